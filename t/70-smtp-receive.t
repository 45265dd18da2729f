#!/usr/bin/env python3
# Receiving mail (SMTP MX and LMTP) into Maildirs, end to end, against the
# file directory: single and multiple recipients, aliases (multi-destination,
# chains, one copy per mailbox), catch-all, +subaddress, SMTPUTF8 with an
# 8-bit body, dot-stuffing, a 20 MB message, BDAT in chunks, pipelining,
# STARTTLS (and plaintext injected behind it), LMTP over TCP and a unix
# socket with per-recipient replies, smtplib and swaks as clients, and SMTP
# smuggling (bare-LF end-of-data look-alikes) under bare_lf = "normalize"
# and "reject".  After every accepted message the Maildir file must be
# exactly what was sent (CRLF -> LF, dot-unstuffed) behind our trace headers,
# in new/, with S= and W= right and nothing left in tmp/.
import os
import re
import smtplib
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mail  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402
from mail import check_stored, lf, qid_of, stuff, unstuff  # noqa: E402

mpd.require_binary()

JOHN, JANE = "john@example.org", "jane@example.org"
BOX = "box@catch.test"
SENDER = "sender@remote.test"


def clear(site):
    """Empty every Maildir, so each case counts only its own files."""
    for p in site.all_files():
        os.unlink(p)


def msg(subject, body_lines):
    """A small CRLF message."""
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\n" % (SENDER, JOHN, subject)
            ).encode() + b"".join(ln + b"\r\n" for ln in body_lines)


def smtplib_send(site, sender, rcpts, message, helo="smtplib.test", mail_options=(),
                 rcpt_options=()):
    """smtplib, step by step so we see every reply: (rcpt codes, data reply)."""
    s = smtplib.SMTP("127.0.0.1", site.port, local_hostname=helo, timeout=60)
    try:
        s.ehlo()
        code, resp = s.mail(sender, list(mail_options))
        if code != 250:
            return [], (code, resp)
        codes = [s.rcpt(r, list(rcpt_options))[0] for r in rcpts]
        data = s.data(message)
        s.quit()
        return codes, data
    finally:
        s.close()


def data_qid(data):
    m = re.search(rb"queued as (\S+)", data[1] or b"")
    return m.group(1).decode() if m else None


# ------------------------------------------------------------ smtplib --

def simple(site):
    clear(site)
    lines = [b"Hello John,", b".", b"..two dots", b".leading dot", b"", b"bye"]
    m = msg("simple", lines)
    codes, data = smtplib_send(site, SENDER, [JOHN], m)
    tap.is_((codes, data[0]), ([250], 250), "smtplib: one recipient accepted and queued")
    files = site.files(JOHN)
    tap.is_(len(files), 1, "one file in john's new/")
    check_stored(files[0] if files else None, lf(m), SENDER, JOHN, "smtplib.test",
                 data_qid(data), rcpt=JOHN, desc="single recipient")

    clear(site)
    m = msg("two", [b"for both"])
    codes, data = smtplib_send(site, SENDER, [JOHN, JANE], m)
    tap.is_((codes, data[0]), ([250, 250], 250), "smtplib: two recipients")
    for who in (JOHN, JANE):
        files = site.files(who)
        tap.is_(len(files), 1, "one copy for %s" % who)
        # Several recipients: no "for <...>" (it would disclose the others).
        check_stored(files[0] if files else None, lf(m), SENDER, who,
                     "smtplib.test", data_qid(data), rcpt=None, desc="two recipients, " + who)

    clear(site)
    m = msg("null sender", [b"bounce"])
    codes, data = smtplib_send(site, "", [JOHN], m)
    tap.is_((codes, data[0]), ([250], 250), "null reverse-path <> accepted")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(m), "", JOHN, "smtplib.test",
                 data_qid(data), rcpt=JOHN, desc="null sender")


def aliases(site):
    clear(site)
    m = msg("team", [b"to the team"])
    codes, data = smtplib_send(site, SENDER, ["team@example.org"], m)
    tap.is_((codes, data[0]), ([250], 250), "alias with two destinations accepted")
    for who in (JOHN, JANE):
        files = site.files(who)
        tap.is_(len(files), 1, "team@ -> one copy for %s" % who)
        check_stored(files[0] if files else None, lf(m), SENDER, who,
                     "smtplib.test", data_qid(data), rcpt="team@example.org",
                     desc="alias team@ -> " + who)

    clear(site)
    m = msg("chain", [b"through two aliases"])
    codes, data = smtplib_send(site, SENDER, ["chain1@example.org"], m)
    tap.is_((codes, data[0]), ([250], 250), "alias chain chain1 -> chain2 -> jane")
    files = site.files(JANE)
    tap.ok(len(files) == 1 and site.files(JOHN) == [], "chain: one copy, in jane's box only")
    check_stored(files[0] if files else None, lf(m), SENDER, JANE, "smtplib.test",
                 data_qid(data), rcpt="chain1@example.org", desc="alias chain")

    clear(site)
    m = msg("dedup", [b"john four times"])
    codes, data = smtplib_send(site, SENDER, [JOHN, "sales@example.org",
                                              "postmaster@example.org", "john+x@example.org",
                                              "team@example.org"], m)
    tap.is_((codes, data[0]), ([250] * 5, 250),
            "john, sales@ (-> john), postmaster@ (-> john), john+x, team@ in one transaction")
    tap.is_((len(site.files(JOHN)), len(site.files(JANE))), (1, 1),
            "one copy per mailbox: john 1, jane 1")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(m), SENDER, JOHN, "smtplib.test",
                 data_qid(data), rcpt=None, desc="deduplicated copy")

    clear(site)
    m = msg("catch-all", [b"for anyone"])
    codes, data = smtplib_send(site, SENDER, ["Whoever@Catch.Test"], m)
    tap.is_((codes, data[0]), ([250], 250), "catch-all @catch.test takes an unknown local part")
    files = site.files(BOX)
    tap.is_(len(files), 1, "catch-all: one copy in box@catch.test")
    check_stored(files[0] if files else None, lf(m), SENDER, BOX, "smtplib.test",
                 data_qid(data), rcpt="Whoever@catch.test", desc="catch-all")

    clear(site)
    m = msg("subaddress", [b"tagged"])
    codes, data = smtplib_send(site, SENDER, ["john+lists@example.org"], m)
    tap.is_((codes, data[0]), ([250], 250), "subaddress john+lists@ accepted")
    files = site.files(JOHN)
    tap.is_(len(files), 1, "subaddress: delivered to john's mailbox")
    check_stored(files[0] if files else None, lf(m), SENDER, JOHN, "smtplib.test",
                 data_qid(data), rcpt="john+lists@example.org", desc="subaddress")


def smtputf8(site):
    clear(site)
    sender = "jörg@bücher.test"
    m = ("From: Jörg <%s>\r\nTo: <%s>\r\nSubject: Grüße\r\n"
         "Content-Type: text/plain; charset=utf-8\r\n"
         "Content-Transfer-Encoding: 8bit\r\n\r\n"
         "Schöne Grüße aus Köln – 東京 — ∑ 🙂\r\n\xa0non-breaking\r\n" % (sender, JOHN)).encode()
    codes, data = smtplib_send(site, sender, [JOHN], m,
                               mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    tap.is_((codes, data[0]), ([250], 250), "SMTPUTF8 sender and 8-bit UTF-8 body accepted")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(m), sender, JOHN, "smtplib.test",
                 data_qid(data), rcpt=JOHN, desc="8-bit UTF-8")


def big(site):
    clear(site)
    # ~20 MB of 78-character lines, every 1000th starting with a dot.
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&()*+,-/:;<=>"
    lines = [(b"." if i % 1000 == 0 else b"") + line for i in range(20 * 1024 * 1024 // 80)]
    m = msg("big", lines)
    del lines
    codes, data = smtplib_send(site, SENDER, [JOHN], m)
    tap.is_((codes, data[0]), ([250], 250), "20 MB message (%d bytes) accepted" % len(m))
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(m), SENDER, JOHN, "smtplib.test",
                 data_qid(data), rcpt=JOHN, desc="20 MB message")
    clear(site)


# -------------------------------------------------------------- swaks --

def swaks(site, args, data):
    datafile = os.path.join(site.d.dir, "swaks.eml")
    with open(datafile, "wb") as f:
        f.write(data)
    r = subprocess.run(["swaks", "--from", SENDER, "--data", "@" + datafile,
                        "--helo", "swaks.test", "--timeout", "60"] + args,
                       capture_output=True, text=True, timeout=120)
    return r


def swaks_cases(site):
    body = msg("swaks", [b"sent by swaks", b".dot line", b"end"])
    # swaks ends the data with CRLF "." CRLF even after a final CRLF: one
    # empty line more.
    stored = lf(body) + b"\n"
    for name, args, with_ in (
            ("plain", ["--server", "127.0.0.1:%d" % site.port], "ESMTP"),
            ("pipelining", ["--server", "127.0.0.1:%d" % site.port, "--pipeline"], "ESMTP"),
            ("STARTTLS", ["--server", "127.0.0.1:%d" % site.port, "-tls"], "ESMTPS")):
        clear(site)
        r = swaks(site, args + ["--to", JOHN], body)
        qid = re.search(r"<[-~] +250 2\.0\.0 Ok: queued as (\S+)", r.stdout)
        tap.ok(r.returncode == 0 and qid, "swaks %s: queued" % name, r.stdout[-1500:], r.stderr)
        files = site.files(JOHN)
        tap.is_(len(files), 1, "swaks %s: one file" % name)
        check_stored(files[0] if files else None, stored, SENDER, JOHN,
                     "swaks.test", qid.group(1) if qid else None, rcpt=JOHN, with_=with_,
                     desc="swaks " + name)

    clear(site)
    r = swaks(site, ["--socket", site.lmtp_path, "--protocol", "LMTP",
                     "--to", "%s,nobody@example.org,%s" % (JOHN, JANE)], body)
    replies = re.findall(r"<[-~] +(250 2\.0\.0 <[^>]*> Ok: delivered as \S+)", r.stdout)
    tap.is_(len(replies), 2, "swaks LMTP over the unix socket: two delivered replies",
            r.stdout[-2500:], r.stderr)
    tap.like(r.stdout, r"<\*\* *550 5\.1\.1 <nobody@example\.org>",
             "swaks LMTP: the unknown recipient refused at RCPT")
    for who in (JOHN, JANE):
        files = site.files(who)
        check_stored(files[0] if files else None, stored, SENDER, who,
                     "swaks.test", qid_of(mpd.Reply(replies[:1])), rcpt=None, with_="LMTP",
                     desc="swaks LMTP " + who)


# --------------------------------------------------------- raw socket --

def raw_dot_stuffing(site):
    clear(site)
    content = (b"Subject: dots\r\n\r\n.\r\n..\r\n...\r\n.x\r\n. \r\nend.\r\n"
               b"a line with . in it\r\n")
    with site.session("raw.test") as c:
        c.send("MAIL FROM:<%s>\r\n" % SENDER)
        tap.is_(c.reply().code, 250, "MAIL")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 250, "RCPT")
        tap.is_(c.cmd("DATA").code, 354, "DATA: 354")
        wire = stuff(content)
        tap.ok(wire.startswith(b"Subject: dots\r\n\r\n..\r\n...\r\n....\r\n..x\r\n"),
               "(the body goes out dot-stuffed)")
        # Byte by byte for the first part: the reader must resume anywhere.
        for i in range(0, 40):
            c.send(wire[i:i + 1])
        c.send(wire[40:])
        r = c.reply()
        tap.like(r.text, r"^250 2\.0\.0 Ok: queued as \S+$", "end of data at CRLF.CRLF: 250")
        tap.ok(c.quiet(), "no other reply")
        tap.is_(c.cmd("QUIT").code, 221, "QUIT")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, unstuff(wire[:-3]), SENDER, JOHN,
                 "raw.test", qid_of(r), rcpt=JOHN, desc="dot-stuffed lines")
    tap.is_(unstuff(wire[:-3]), content.replace(b"\r\n", b"\n"),
            "(expected form: the lines exactly as the author wrote them)")

    clear(site)
    with site.session("raw.test") as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("DATA")
        c.send(".\r\n")
        r = c.reply()
        tap.like(r.text, r"^250 ", "empty message (just the end marker): 250")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, b"", SENDER, JOHN, "raw.test", qid_of(r),
                 rcpt=JOHN, desc="empty message")

    clear(site)
    with site.session("raw.test") as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        tap.is_(c.cmd("RSET").code, 250, "RSET")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 503, "RSET cleared the transaction: RCPT 503")
        tap.is_(c.cmd("DATA").code, 503, "... DATA 503")
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250, "new MAIL after RSET")
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 503, "nested MAIL: 503")
    tap.is_(site.all_files(), [], "nothing delivered")


def bdat(site):
    clear(site)
    # CRLF split over chunk boundaries, a ".." line and a "." line that
    # BDAT must keep as they are (no stuffing, no end marker).
    chunks = [b"Subject: chunks\r\n\r\nfirst line\r", b"\n..two dots\r\n.\r\n",
              b"x" * 900 + b"\r\n", b"", b"last line\r\n"]
    content = b"".join(chunks)
    with site.session("bdat.test") as c:
        tap.is_(c.cmd("MAIL FROM:<%s> BODY=8BITMIME" % SENDER).code, 250, "MAIL")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 250, "RCPT")
        got = []
        for ch in chunks[:-1]:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            got.append(c.reply().text)
        tap.ok(all(re.match(r"^250 2\.0\.0 \d+ octets received$", t) for t in got),
               "every non-last chunk: 250 N octets received", repr(got))
        tap.is_(c.cmd("DATA").code, 503, "DATA after BDAT: 503")
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        r = c.reply()
        tap.like(r.text, r"^250 2\.0\.0 Ok: queued as \S+$", "BDAT LAST: queued")
        tap.is_(c.cmd("NOOP").code, 250, "in sync after BDAT")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, content.replace(b"\r\n", b"\n"), SENDER, JOHN,
                 "bdat.test", qid_of(r), rcpt=JOHN, desc="BDAT in 5 chunks")

    clear(site)
    content = b"Subject: one write\r\n\r\nall pipelined\r\n"
    with site.session("bdat.test") as c:
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nBDAT 10\r\n%sBDAT %d LAST\r\n%sQUIT\r\n"
               % (SENDER.encode(), JANE.encode(), content[:10], len(content) - 10,
                  content[10:]))
        rs = c.replies(5)
        tap.is_([r.code for r in rs], [250, 250, 250, 250, 221],
                "MAIL, RCPT, BDAT, BDAT LAST, QUIT in one write", repr(rs))
    files = site.files(JANE)
    check_stored(files[0] if files else None, content.replace(b"\r\n", b"\n"), SENDER, JANE,
                 "bdat.test", qid_of(rs[3]), rcpt=JANE, desc="pipelined BDAT")

    clear(site)
    with site.session("bdat.test") as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.send("BDAT 0 LAST\r\n")
        r = c.reply()
        tap.like(r.text, r"^250 2\.0\.0 Ok: queued", "BDAT 0 LAST: an empty message")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, b"", SENDER, JOHN, "bdat.test", qid_of(r),
                 rcpt=JOHN, desc="BDAT 0 LAST")


def pipelining(site):
    clear(site)
    content = b"Subject: pipelined\r\n\r\nbody\r\n"
    with site.session("pipe.test") as c:
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<nobody@example.org>\r\n"
               "RCPT TO:<%s>\r\nDATA\r\n" % (SENDER, JOHN, JANE))
        tap.is_(c.codes(5), [250, 250, 550, 250, 354],
                "MAIL, 3 RCPT (one unknown), DATA in one write: replies in order")
        c.send(stuff(content))
        r = c.reply()
        tap.like(r.text, r"^250 2\.0\.0 Ok: queued", "message queued")
    for who in (JOHN, JANE):
        files = site.files(who)
        check_stored(files[0] if files else None, lf(content), SENDER, who,
                     "pipe.test", qid_of(r), rcpt=None, desc="pipelined group, " + who)

    clear(site)
    one = b"Subject: first\r\n\r\n.one\r\n"
    two = b"Subject: second\r\n\r\ntwo\r\n"
    with site.session("pipe.test") as c:
        c.send(("MAIL FROM:<a@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % JOHN).encode()
               + stuff(one)
               + ("MAIL FROM:<b@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n" % JANE).encode()
               + stuff(two) + b"QUIT\r\n")
        rs = c.replies(9)
        tap.is_([r.code for r in rs], [250, 250, 354, 250, 250, 250, 354, 250, 221],
                "two whole transactions and QUIT in one write", repr(rs))
        tap.ok(c.wait_eof(5), "closed after QUIT")
    tap.isnt(qid_of(rs[3]), qid_of(rs[7]), "two queue ids")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(one), "a@remote.test", JOHN,
                 "pipe.test", qid_of(rs[3]), rcpt=JOHN, desc="back-to-back #1")
    files = site.files(JANE)
    check_stored(files[0] if files else None, lf(two), "b@remote.test", JANE,
                 "pipe.test", qid_of(rs[7]), rcpt=JANE, desc="back-to-back #2")
    tap.is_(len(site.all_files()), 2, "exactly two files")


def starttls(site):
    clear(site)
    content = b"Subject: over TLS\r\n\r\nsecret stuff\r\n"
    with site.client() as c:
        c.reply()
        r = c.cmd("EHLO before.test")
        tap.ok("STARTTLS" in r.text and "CHUNKING" in r.text and "SMTPUTF8" in r.text
               and "SIZE 41943040" in r.text and "PIPELINING" in r.text
               and "8BITMIME" in r.text and "DSN" in r.text and "ENHANCEDSTATUSCODES" in r.text
               and "AUTH" not in r.text, "EHLO on the MX lists every extension, no AUTH",
               r.text)
        tap.is_(c.cmd("STARTTLS").code, 220, "STARTTLS: 220")
        c.starttls(mpd.client_ctx())
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 503, "TLS forgot the EHLO: MAIL 503")
        r = c.cmd("EHLO after.test")
        tap.ok(r.code == 250 and "STARTTLS" not in r.text, "EHLO again: no STARTTLS any more")
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("DATA")
        c.send(stuff(content))
        r = c.reply()
        tap.like(r.text, r"^250 ", "message over TLS queued")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(content), SENDER, JOHN,
                 "after.test", qid_of(r), rcpt=JOHN, with_="ESMTPS", desc="STARTTLS")

    clear(site)
    with site.client() as c:
        c.reply()
        c.cmd("EHLO inject.test")
        c.send("STARTTLS\r\nMAIL FROM:<x@y.test>\r\n")
        tap.is_(c.reply().code, 220, "STARTTLS with MAIL pipelined behind it: 220")
        c.starttls(mpd.client_ctx())
        tap.ok(c.quiet(0.5), "no reply to the injected plaintext MAIL")
        c.cmd("EHLO inject.test")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 503,
                "after TLS, RCPT without MAIL: 503 (the injected MAIL was dropped)")
    tap.is_(site.all_files(), [], "nothing delivered")


def lmtp(site):
    content = b"Subject: via LMTP\r\n\r\n.dot\r\nbody\r\n"
    for kind in ("tcp", "unix"):
        clear(site)
        c = (mail.Client(site.lmtp_port) if kind == "tcp"
             else mail.Client(path=site.lmtp_path))
        with c:
            tap.like(c.reply().text, r"^220 \S+ LMTP moonpost$", "LMTP %s greeting" % kind)
            tap.is_(c.cmd("EHLO x.test").code, 500, "LMTP %s: EHLO is 500" % kind)
            tap.is_(c.cmd("HELO x.test").code, 500, "LMTP %s: HELO is 500" % kind)
            tap.is_(c.cmd("LHLO lmtp.test").code, 250, "LMTP %s: LHLO" % kind)
            tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250, "MAIL")
            rc = [c.cmd("RCPT TO:<%s>" % a).code
                  for a in (JOHN, "nobody@example.org", "team@example.org", BOX)]
            tap.is_(rc, [250, 550, 250, 250], "LMTP %s: RCPT codes, the unknown one 550" % kind)
            tap.is_(c.cmd("DATA").code, 354, "DATA")
            c.send(stuff(content))
            rs = c.replies(3)
            texts = [r.text for r in rs]
            ok = (len(texts) == 3 and all(re.match(r"^250 2\.0\.0 <(.*)> Ok: delivered as \S+$", t)
                                          for t in texts)
                  and [re.match(r"^250 2\.0\.0 <(.*?)>", t).group(1) for t in texts]
                  == [JOHN, "team@example.org", BOX])
            tap.ok(ok, "LMTP %s: one 250 per accepted RCPT, in order" % kind, repr(texts))
            tap.ok(c.quiet(), "LMTP %s: no reply for the refused recipient" % kind)
            tap.is_(c.cmd("QUIT").code, 221, "QUIT")
        tap.is_((len(site.files(JOHN)), len(site.files(JANE)), len(site.files(BOX))),
                (1, 1, 1), "LMTP %s: john (direct + via team@) once, jane, box" % kind)
        for who in (JOHN, JANE, BOX):
            files = site.files(who)
            check_stored(files[0] if files else None, lf(content), SENDER, who,
                         "lmtp.test", qid_of(rs[0]), rcpt=None, with_="LMTP",
                         desc="LMTP %s %s" % (kind, who))

    # CHUNKING over LMTP: the last chunk gets one reply per recipient too.
    clear(site)
    content = b"Subject: LMTP BDAT\r\n\r\n..kept\r\n"
    with mail.Client(site.lmtp_port) as c:
        c.reply()
        c.cmd("LHLO lmtp.test")
        c.cmd("MAIL FROM:<%s>" % SENDER)
        tap.ok(c.cmd("RCPT TO:<someone@remote.test>").code != 250,
               "LMTP: a foreign domain is not accepted")
        c.cmd("RCPT TO:<%s>" % JANE)
        c.cmd("RCPT TO:<%s>" % BOX)
        c.send(b"BDAT 10\r\n" + content[:10])
        tap.like(c.reply().text, r"^250 2\.0\.0 10 octets received", "LMTP BDAT chunk")
        c.send(b"BDAT %d LAST\r\n" % (len(content) - 10) + content[10:])
        rs = c.replies(2)
        tap.is_([re.sub(r" as \S+$", "", r.text) for r in rs],
                ["250 2.0.0 <%s> Ok: delivered" % a for a in (JANE, BOX)],
                "LMTP BDAT LAST: one reply per recipient")
        tap.ok(c.quiet(), "no more replies")
    for who in (JANE, BOX):
        files = site.files(who)
        check_stored(files[0] if files else None, lf(content), SENDER, who, "lmtp.test",
                     qid_of(rs[0]), rcpt=None, with_="LMTP", desc="LMTP BDAT " + who)


# ----------------------------------------------------------- smuggling --

SMUGGLE = [
    ("\\n.\\n",
     b"Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<jane@example.org>\n"
     b"DATA\nevil\n.\nafter\r\n",
     b"Subject: smuggle\n\nhello\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<jane@example.org>\n"
     b"DATA\nevil\n.\nafter\n"),
    ("\\r\\n.\\n",
     b"Subject: smuggle\r\n\r\nhello\r\n.\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<jane@example.org>\r\n"
     b"DATA\r\nevil\r\n.\nafter\r\n",
     b"Subject: smuggle\n\nhello\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<jane@example.org>\n"
     b"DATA\nevil\n.\nafter\n"),
    ("\\n.\\r\\n",
     b"Subject: smuggle\r\n\r\nhello\n.\r\nMAIL FROM:<evil@x.test>\r\nRCPT TO:<jane@example.org>\r\n"
     b"DATA\r\nevil\n.\r\nafter\r\n",
     b"Subject: smuggle\n\nhello\n.\nMAIL FROM:<evil@x.test>\nRCPT TO:<jane@example.org>\n"
     b"DATA\nevil\n.\nafter\n"),
]


def smuggle_once(site, wire, split):
    """One transaction with `wire` as the body; returns (replies, extra bytes)."""
    with site.session("smuggler.test") as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("DATA")
        if split:
            for i in range(len(wire)):
                c.send(wire[i:i + 1])
        else:
            c.send(wire)
        c.send(b".\r\n")
        r = c.reply()
        extra = c.pending(0.25)
        quit_code = c.cmd("QUIT").code if not extra else None
        return r, extra, quit_code


def smuggling(site, strict):
    for name, wire, stored in SMUGGLE:
        for split in (False, True):
            how = "%s%s%s" % ("[reject] " if strict else "", name,
                              " byte by byte" if split else "")
            clear(site)
            mark = site.d.mark()
            r, extra, quit_code = smuggle_once(site, wire, split)
            tap.is_(extra, b"", "smuggling %s: exactly one reply to the whole input" % how)
            tap.is_(quit_code, 221, "smuggling %s: next command after the real end is QUIT" % how)
            tap.ok(not site.files(JANE), "smuggling %s: nothing for jane" % how)
            tap.unlike(site.d.log_text(mark), r"event=rcpt .*to=<jane@example\.org>",
                       "smuggling %s: the smuggled RCPT was never run as a command" % how)
            if strict:
                tap.like(r.text, r"^550 5\.6\.11 ", "bare_lf=reject, %s: 550 5.6.11" % how)
                tap.is_(site.all_files(), [], "bare_lf=reject, %s: no message at all" % how)
                continue
            tap.like(r.text, r"^250 2\.0\.0 Ok: queued", "smuggling %s: one message queued" % how)
            files = site.files(JOHN)
            tap.is_(len(site.all_files()), 1, "smuggling %s: exactly one file" % how)
            check_stored(files[0] if files else None, stored, SENDER, JOHN, "smuggler.test",
                         qid_of(r), rcpt=JOHN, desc="smuggling " + how)


def main():
    site = mail.Site(lmtp=True, lmtp_unix=True)
    try:
        for name, fn in (("simple", simple), ("aliases", aliases), ("smtputf8", smtputf8),
                         ("raw", raw_dot_stuffing), ("bdat", bdat),
                         ("pipelining", pipelining), ("starttls", starttls), ("lmtp", lmtp),
                         ("swaks", swaks_cases), ("big", big)):
            with tap.section(name):
                fn(site)
        with tap.section("smuggling"):
            smuggling(site, strict=False)
    finally:
        site.stop()

    strict = mail.Site(smtp={"bare_lf": "reject"})
    try:
        with tap.section("smuggling, bare_lf=reject"):
            smuggling(strict, strict=True)
            # A clean message still passes under the strict policy.
            m = msg("clean", [b"only CRLF here"])
            codes, data = smtplib_send(strict, SENDER, [JOHN], m)
            tap.is_((codes, data[0]), ([250], 250), "bare_lf=reject: a CRLF-only message passes")
            files = strict.files(JOHN)
            check_stored(files[0] if files else None, lf(m), SENDER, JOHN,
                         "smtplib.test", data_qid(data), rcpt=JOHN, desc="strict, clean")
    finally:
        strict.stop()


main()
tap.done()
