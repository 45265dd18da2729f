#!/usr/bin/env python3
# Every refusal and limit of the receive path, each driven across its
# boundary: unknown users, relay attempts (also from another loopback source
# address and with source routes), rcpt_max, SIZE= at MAIL, the real content
# size (DATA, BDAT, LMTP), lines over 998 octets (reject / accept), bare CR
# (reject / normalize), mailbox quota, aliases to external addresses and
# alias loops, the postmaster, BDAT without recipients, MAIL/RCPT syntax,
# errors_max, idle timeouts (between commands and inside DATA), and a
# directory that is down (MariaDB on a closed port: 451, never 550).  A
# refused message must leave nothing in any Maildir.
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mail  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402
from mail import check_stored, lf, qid_of, stuff  # noqa: E402

mpd.require_binary()

JOHN, JANE, BOX, QUOTA = ("john@example.org", "jane@example.org", "box@catch.test",
                          "quota@example.org")
SENDER = "sender@remote.test"
MSG_MAX = 102400
RCPT_MAX = 3
ERRORS_MAX = 5
QUOTA_BYTES = 2000      # quota@example.org in mail.DIRECTORY


def clear(site):
    for p in site.all_files():
        os.unlink(p)


def transaction(site, rcpts, content=None, helo="limits.test", mail_args="", source="127.0.0.1"):
    """MAIL + RCPTs (+ DATA with content, dot-stuffed here) on a new
    connection: (rcpt replies, final reply or None)."""
    with site.session(helo, source=source) as c:
        r = c.cmd("MAIL FROM:<%s>%s" % (SENDER, mail_args))
        if r.code != 250:
            return [r], None
        rs = [c.cmd("RCPT TO:<%s>" % a) for a in rcpts]
        if content is None:
            return rs, None
        d = c.cmd("DATA")
        if d.code != 354:
            return rs, d
        c.send(stuff(content))
        return rs, c.reply()


def sized(n, line_len=100):
    """CRLF content whose stored (LF) form is exactly n bytes."""
    body = b"Subject: sized\r\n\r\n"
    left = n - len(lf(body))
    out = [body]
    while left > 0:
        k = min(line_len, left)            # k-1 letters + LF
        out.append(b"y" * (k - 1) + b"\r\n")
        left -= k
    c = b"".join(out)
    assert len(lf(c)) == n, (len(lf(c)), n)
    return c


# ------------------------------------------------------------ recipients --

def recipients(site):
    clear(site)
    rs, _ = transaction(site, ["nobody@example.org", "NOBODY@other.test",
                               "john%remote.test@example.org"])
    tap.like(rs[0].text, r"^550 5\.1\.1 <nobody@example\.org>: .*User unknown",
             "unknown user in our domain: 550 5.1.1")
    tap.like(rs[1].text, r"^550 5\.1\.1 ", "unknown user in another of our domains: 550 5.1.1")
    tap.like(rs[2].text, r"^550 5\.1\.1 ", "percent hack john%remote.test@ours: unknown, 550")

    for source in ("127.0.0.1", "127.0.0.2"):
        rs, _ = transaction(site, ["someone@remote.test", "john@example.org.remote.test",
                                   "@example.org:someone@remote.test"], source=source)
        tap.is_([r.text[:9] for r in rs], ["554 5.7.1"] * 3,
                "relay from %s (plain, look-alike domain, source route): 554 5.7.1" % source,
                repr(rs))
        tap.like(rs[0].text, r"Relay access denied", "... says relay access denied")

    rs, _ = transaction(site, ["ext@example.org", "mixed@example.org"])
    tap.like(rs[0].text, r"^451 4\.4\.0 <ext@example\.org>",
             "alias to an external address: 451 4.4.0")
    tap.like(rs[1].text, r"^451 4\.4\.0 ",
             "alias to a local and an external address: 451 4.4.0 too")
    rs, _ = transaction(site, ["loopx@example.org"])
    tap.like(rs[0].text, r"^554 5\.4\.6 <loopx@example\.org>", "alias loop: 554 5.4.6")

    # smtp.postmaster = john here: bare <postmaster> and postmaster@ of a
    # domain without a postmaster alias both reach john.
    rs, r = transaction(site, ["postmaster", "Postmaster@other.test"], b"Subject: pm\r\n\r\nhi\r\n")
    tap.is_([x.code for x in rs] + [r.code if r else None], [250, 250, 250],
            "RCPT TO:<postmaster> and postmaster@other.test accepted (smtp.postmaster set)",
            repr(rs))
    files = site.files(JOHN)
    tap.is_(len(files), 1, "one copy for john via both postmaster forms")
    check_stored(files[0] if files else None, lf(b"Subject: pm\r\n\r\nhi\r\n"), SENDER, JOHN,
                 "limits.test", qid_of(r), desc="postmaster")
    tap.is_(len(site.all_files()), 1, "nothing else stored")

    # Good and bad recipients together: only the good ones get the message.
    clear(site)
    content = b"Subject: mixed\r\n\r\nsome get it\r\n"
    rs, r = transaction(site, [JOHN, "nobody@example.org", "x@remote.test", "ext@example.org",
                               JANE], content)
    tap.is_([x.code for x in rs], [250, 550, 554, 451, 250], "mixed RCPT codes")
    tap.like(r.text if r else "", r"^250 2\.0\.0 Ok: queued", "DATA with 2 of 5 accepted: 250")
    tap.is_(sorted(os.path.relpath(p, site.vmail).split(os.sep)[:2]
                   for p in site.all_files()), [["example.org", "jane"], ["example.org", "john"]],
            "delivered to john and jane only")
    for who in (JOHN, JANE):
        files = site.files(who)
        check_stored(files[0] if files else None, lf(content), SENDER, who, "limits.test",
                     qid_of(r), rcpt=None, desc="mixed, " + who)

    # rcpt_max = 3: the fourth RCPT crosses it.
    clear(site)
    rs, r = transaction(site, [JOHN, JANE, BOX, QUOTA], b"Subject: four\r\n\r\nx\r\n")
    tap.is_([x.code for x in rs], [250, 250, 250, 452], "rcpt_max=3: RCPT 1-3 250, the 4th 452")
    tap.like(rs[3].text, r"^452 4\.5\.3 ", "... 452 4.5.3")
    tap.like(r.text if r else "", r"^250 ", "DATA after the 452 still delivers")
    tap.is_([len(site.files(a)) for a in (JOHN, JANE, BOX, QUOTA)], [1, 1, 1, 0],
            "the three accepted got it, the fourth did not")

    with site.session() as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.send("".join("RCPT TO:<%s>\r\n" % a for a in [JOHN, "nobody@example.org", JANE, BOX,
                                                          QUOTA]))
        tap.is_(c.codes(5), [250, 550, 250, 250, 452],
                "refused RCPTs do not count toward rcpt_max (pipelined)")


def quota(site):
    clear(site)
    first = sized(700)
    rs, r = transaction(site, [QUOTA], first, mail_args=" SIZE=%d" % len(first))
    tap.ok(rs[0].code == 250 and r and r.code == 250, "quota: a first message fits",
           repr(rs), repr(r))
    used = site.usage(QUOTA)
    tap.ok(0 < used < QUOTA_BYTES, "usage now %d of %d" % (used, QUOTA_BYTES))
    room = QUOTA_BYTES - used
    rs, _ = transaction(site, [QUOTA], mail_args=" SIZE=%d" % room)
    tap.is_(rs[0].code, 250, "RCPT with SIZE = the room left (%d): 250" % room)
    rs, _ = transaction(site, [QUOTA, JOHN], mail_args=" SIZE=%d" % (room + 1))
    tap.like(rs[0].text, r"^552 5\.2\.2 <quota@example\.org>",
             "RCPT with SIZE = room + 1 (%d): 552 5.2.2" % (room + 1))
    tap.is_(rs[1].code, 250, "... while john (no quota) takes the same SIZE")

    second = sized(900)
    rs, r = transaction(site, [QUOTA], second)
    tap.ok(rs[0].code == 250 and r and r.code == 250,
           "a second message (no SIZE declared) is accepted", repr(rs), repr(r))
    tap.ok(site.usage(QUOTA) > QUOTA_BYTES, "usage now over quota (%d)" % site.usage(QUOTA))
    rs, _ = transaction(site, [QUOTA], mail_args=" SIZE=1500")
    tap.like(rs[0].text, r"^552 5\.2\.2 ", "then RCPT with SIZE=1500: 552 5.2.2")
    rs, _ = transaction(site, [QUOTA])
    tap.like(rs[0].text, r"^552 5\.2\.2 ", "and without SIZE: 552 5.2.2 (already over)")
    tap.is_(len(site.files(QUOTA)), 2, "two messages stored, no third")


# --------------------------------------------------------------- content --

def sizes(site):
    with site.session() as c:
        tap.ok("SIZE %d" % MSG_MAX in c.cmd("EHLO again.test").text, "EHLO says SIZE %d" % MSG_MAX)
        tap.is_(c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, MSG_MAX)).code, 250,
                "MAIL SIZE=message_size: 250")
        c.cmd("RSET")
        tap.like(c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, MSG_MAX + 1)).text,
                 r"^552 5\.3\.4 ", "MAIL SIZE=message_size+1: 552 5.3.4")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 503, "no transaction after the 552")

    clear(site)
    exact = sized(MSG_MAX)
    rs, r = transaction(site, [JOHN], exact)
    tap.like(r.text if r else "", r"^250 ", "content of exactly message_size bytes: 250")
    files = site.files(JOHN)
    check_stored(files[0] if files else None, lf(exact), SENDER, JOHN, "limits.test", qid_of(r),
                 rcpt=JOHN, desc="exactly message_size")

    clear(site)
    over = sized(MSG_MAX + 1)
    with site.session() as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("RCPT TO:<%s>" % JANE)
        c.cmd("DATA")
        c.send(stuff(over))
        tap.like(c.reply().text, r"^552 5\.3\.4 ", "content of message_size+1 bytes: 552 5.3.4")
        tap.ok(c.quiet(0.2), "one reply")
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 503, "the transaction is over")
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 250, "a new one can start")
    tap.is_(site.all_files(), [], "nothing stored")

    big = sized(3 * MSG_MAX)
    with site.session() as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.send(b"BDAT %d\r\n%s" % (MSG_MAX, big[:MSG_MAX]))
        tap.like(c.reply().text, r"^250 ", "BDAT: a first chunk of message_size bytes")
        rest = big[MSG_MAX:]
        c.send(b"BDAT %d LAST\r\n%s" % (len(rest), rest))
        tap.like(c.reply().text, r"^552 5\.3\.4 ", "BDAT content over message_size: 552 5.3.4")
        tap.is_(c.cmd("NOOP").code, 250, "in sync: every chunk byte was read")
    tap.is_(site.all_files(), [], "nothing stored")

    with mail.Client(site.lmtp_port) as c:
        c.reply()
        c.cmd("LHLO lmtp.test")
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("RCPT TO:<%s>" % JANE)
        c.cmd("DATA")
        c.send(stuff(over))
        rs = c.replies(2)
        tap.is_([r.text[:9] for r in rs], ["552 5.3.4"] * 2,
                "LMTP over message_size: one 552 5.3.4 per recipient")
        tap.ok(c.quiet(0.2), "LMTP: no third reply")
    tap.is_(site.all_files(), [], "nothing stored")


def lines(site, accept):
    clear(site)
    for n in (998, 999, 1500):
        content = b"Subject: long\r\n\r\n" + b"L" * n + b"\r\nend\r\n"
        rs, r = transaction(site, [JOHN], content)
        if n == 998 or accept:
            tap.like(r.text if r else "", r"^250 ", "a %d-octet line (long_lines=%s): 250"
                     % (n, "accept" if accept else "reject"))
            files = site.files(JOHN)
            check_stored(files[-1] if files else None, lf(content), SENDER, JOHN, "limits.test",
                         qid_of(r), rcpt=JOHN, desc="%d-octet line" % n)
            clear(site)
        else:
            tap.like(r.text if r else "", r"^550 5\.6\.0 ",
                     "a %d-octet line (long_lines=reject): 550 5.6.0" % n)
            tap.is_(site.all_files(), [], "nothing stored")

    # Bare CR in the body (and at the very end of a BDAT message).
    clear(site)
    content = b"Subject: cr\r\n\r\nbare\rCR\r\n"
    rs, r = transaction(site, [JOHN], content)
    if accept:
        tap.like(r.text if r else "", r"^250 ", "bare CR (bare_cr=normalize): 250")
        files = site.files(JOHN)
        check_stored(files[0] if files else None, b"Subject: cr\n\nbare\rCR\n", SENDER, JOHN,
                     "limits.test", qid_of(r), rcpt=JOHN, desc="bare CR kept as a byte")
    else:
        tap.like(r.text if r else "", r"^550 5\.6\.11 ", "bare CR (bare_cr=reject): 550 5.6.11")
        with site.session() as c:
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.cmd("RCPT TO:<%s>" % JOHN)
            c.send(b"BDAT 12 LAST\r\nSubject: x\r\r")
            tap.like(c.reply().text, r"^550 5\.6\.11 ", "BDAT ending in a bare CR: 550 5.6.11")
        tap.is_(site.all_files(), [], "nothing stored")


# ----------------------------------------------------------- the session --

def session(site):
    with site.client() as c:
        c.reply()
        tap.is_(c.cmd("MAIL FROM:<%s>" % SENDER).code, 503, "MAIL before EHLO: 503")
        c.cmd("EHLO syntax.test")
        tap.like(c.cmd("MAIL FROM:<not an address>").text, r"^501 5\.1\.7 ",
                 "MAIL with a bad address: 501 5.1.7")
        tap.like(c.cmd("MAIL FROM:<%s> FOO=bar" % SENDER).text, r"^555 5\.5\.4 ",
                 "MAIL with an unknown parameter: 555 5.5.4")
    with site.session() as c:
        tap.is_(c.cmd("MAIL FROM:<%s> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x1 "
                      "AUTH=<>" % SENDER).code, 250, "MAIL with every known parameter: 250")
        tap.like(c.cmd("RCPT TO:<%s> FOO=1" % JOHN).text, r"^555 5\.5\.4 ",
                 "RCPT with an unknown parameter: 555 5.5.4")
        tap.is_(c.cmd("RCPT TO:<%s> NOTIFY=NEVER ORCPT=rfc822;%s" % (JOHN, JOHN)).code, 250,
                "RCPT with NOTIFY and ORCPT: 250")
        tap.like(c.cmd("RCPT TO:<>").text, r"^501 ", "RCPT TO:<>: 501")

    # BDAT with no transaction / no recipient: the chunk is read (the
    # session stays in sync) and refused.
    with site.session() as c:
        c.send("BDAT 5\r\nNOOP\n")
        r = c.reply()
        tap.ok(r.code in (503, 554), "BDAT without MAIL: refused (%s)" % r.text)
        tap.is_(c.cmd("NOOP").code, 250, "the chunk was swallowed, next command in sync")
        tap.ok(c.quiet(0.2), "no reply for the chunk's bytes")
    with site.session() as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<nobody@example.org>")
        c.send("BDAT 6 LAST\r\nRSET\r\n")
        r = c.reply()
        tap.ok(r.code in (503, 554), "BDAT LAST without valid recipients: refused (%s)" % r.text)
        tap.ok(c.quiet(0.2), "the chunk (\"RSET\") was not run as a command")
        # Same transaction: once a recipient is accepted, DATA must read a
        # body again, not commands.
        tap.is_(c.cmd("RCPT TO:<%s>" % JOHN).code, 250, "then a good RCPT")
        tap.is_(c.cmd("DATA").code, 354, "then DATA: 354")
        c.send("Subject: after a refused BDAT\r\n\r\nRSET\r\n")
        tap.ok(c.quiet(0.3), "the body line \"RSET\" is content, not a command",
               "got %r" % c.buf)
        c.send(".\r\n")
        r = c.reply()
        tap.like(r.text, r"^250 2\.0\.0 Ok: queued", "and the message ends at CRLF.CRLF")
    files = site.files(JOHN)
    tap.is_(len(files), 1, "delivered once")
    clear(site)

    # errors_max = 5: the fifth error is answered, then 421 and close.
    with site.session() as c:
        codes = [c.cmd("BOGUS %d" % i).code for i in range(ERRORS_MAX - 1)]
        tap.is_(codes, [500] * (ERRORS_MAX - 1), "%d bad commands: 500 each" % (ERRORS_MAX - 1))
        tap.is_(c.cmd("NOOP").code, 250, "still open after %d errors" % (ERRORS_MAX - 1))
        tap.is_(c.cmd("BOGUS last").code, 500, "error number %d: 500" % ERRORS_MAX)
        r = c.reply()
        tap.like(r.text, r"^421 4\.7\.0 ", "... then 421 4.7.0")
        tap.ok(c.wait_eof(5), "... and the server closes")
    with site.session() as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        codes = [c.cmd("RCPT TO:<nobody%d@example.org>" % i).code for i in range(ERRORS_MAX)]
        tap.is_(codes, [550] * ERRORS_MAX, "refused RCPTs count as errors")
        tap.like(c.reply().text, r"^421 4\.7\.0 ", "the %dth refused RCPT ends the session"
                 % ERRORS_MAX)
        tap.ok(c.wait_eof(5), "closed")


def delivery_failure(site):
    """A mailbox that cannot be written (its Maildir path is a file): SMTP
    says 451 for the message, LMTP 451 for that recipient only."""
    clear(site)
    broken = site.maildir(JANE)
    os.makedirs(os.path.dirname(broken), exist_ok=True)
    if os.path.isdir(broken):
        for sub in ("new", "cur", "tmp"):
            os.rmdir(os.path.join(broken, sub))
        os.rmdir(broken)
    with open(broken, "w") as f:
        f.write("not a directory\n")
    try:
        content = b"Subject: half\r\n\r\nx\r\n"
        rs, r = transaction(site, [JANE], content)
        tap.like(r.text if r else "", r"^451 4\.3\.0 ", "SMTP, the only mailbox unwritable: 451 4.3.0")
        with mail.Client(site.lmtp_port) as c:
            c.reply()
            c.cmd("LHLO lmtp.test")
            c.cmd("MAIL FROM:<%s>" % SENDER)
            c.cmd("RCPT TO:<%s>" % JOHN)
            c.cmd("RCPT TO:<%s>" % JANE)
            c.cmd("DATA")
            c.send(stuff(content))
            rs = c.replies(2)
            tap.like(rs[0].text, r"^250 2\.0\.0 <john@example\.org> Ok", "LMTP: john 250")
            tap.like(rs[1].text, r"^451 4\.3\.0 <jane@example\.org>", "LMTP: jane 451 4.3.0")
        tap.is_(len(site.files(JOHN)), 1, "john's copy is stored")
        tap.ok(site.d.wait_log(r"event=delivered .*to=<jane@example\.org> status=deferred", 2),
               "the failure is logged as deferred")
    finally:
        os.unlink(broken)
    clear(site)


def idle(site, timeout):
    with site.session() as c:
        t = time.monotonic()
        r = c.reply()
        took = time.monotonic() - t
        tap.like(r.text, r"^421 4\.4\.2 ", "idle between commands: 421 4.4.2")
        tap.ok(timeout - 0.3 <= took <= timeout + 3, "after about %ds (%.1fs)" % (timeout, took))
        tap.ok(c.wait_eof(5), "closed")

    clear(site)
    with site.session() as c:
        c.cmd("MAIL FROM:<%s>" % SENDER)
        c.cmd("RCPT TO:<%s>" % JOHN)
        c.cmd("DATA")
        c.send("Subject: never finished\r\n\r\nhalf a message\r\n")
        r = c.reply()
        tap.like(r.text, r"^421 4\.4\.2 ", "idle inside DATA: 421 4.4.2")
        tap.ok(c.wait_eof(5), "closed")
    time.sleep(0.2)
    tap.is_(site.all_files(), [], "the half message is not stored")
    tap.ok(site.d.wait_log(r"event=lost_connection during=data", 5),
           "logged as lost during data")


def directory_down():
    """MariaDB backend on a port nobody listens on: the daemon starts, RCPT
    is a temporary failure (451 4.3.0), never an unknown user."""
    d = mpd.Daemon(start=False)
    try:
        port = mpd.free_port()
        d.write_config({"smtp": {"idle_timeout": 1},
                        "directory": {"backend": "mariadb", "cache_ttl": 0, "negative_ttl": 0,
                                      "maildir": os.path.join(d.dir, "vmail/%d/%n/Maildir"),
                                      "mariadb": {"host": "127.0.0.1", "port": port,
                                                  "connect_timeout": 1,
                                                  "query_timeout": 1}}})
        d.start()
        tap.ok(d.running(), "daemon starts with the directory's database unreachable")
        with mail.Client(d.ports["smtp"]) as c:
            c.reply()
            c.cmd("EHLO down.test")
            c.cmd("MAIL FROM:<%s>" % SENDER)
            for a in (JOHN, "nobody@example.org", "x@remote.test"):
                t = time.monotonic()
                r = c.cmd("RCPT TO:<%s>" % a)
                tap.like(r.text, r"^451 4\.3\.0 ", "directory down, RCPT %s: 451 4.3.0" % a)
                tap.ok(time.monotonic() - t < 5, "... within 5 s")
        with mail.Client(d.ports["smtp"]) as c:
            c.reply()
            t = time.monotonic()
            r = c.reply()
            took = time.monotonic() - t
            tap.like(r.text, r"^421 4\.4\.2 ", "idle_timeout=1 after the greeting: 421 4.4.2")
            tap.ok(took < 4, "after %.1fs" % took)
            tap.ok(c.wait_eof(5), "closed")
        tap.ok(not os.path.exists(os.path.join(d.dir, "vmail")), "nothing stored")
    finally:
        d.stop()
        d.cleanup()


def main():
    site = mail.Site(smtp={"rcpt_max": RCPT_MAX, "message_size": MSG_MAX, "bare_cr": "reject",
                           "errors_max": ERRORS_MAX, "postmaster": JOHN}, lmtp=True)
    try:
        for name, fn in (("recipients", recipients), ("quota", quota), ("sizes", sizes),
                         ("lines", lambda s: lines(s, False)), ("session", session),
                         ("delivery failure", delivery_failure)):
            with tap.section(name):
                fn(site)
    finally:
        site.stop()

    lax = mail.Site(smtp={"long_lines": "accept", "idle_timeout": 2})
    try:
        with tap.section("long_lines=accept"):
            lines(lax, True)
        with tap.section("idle"):
            idle(lax, 2)
    finally:
        lax.stop()

    with tap.section("directory down"):
        directory_down()


main()
tap.done()
