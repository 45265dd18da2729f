#!/usr/bin/env python3
# A real Postfix in front of moonpost, the ISPmail way: Postfix receives mail
# on SMTP and hands it to moonpost over LMTP (virtual_transport =
# lmtp:inet:127.0.0.1:PORT, then lmtp:unix:/path/lmtp.sock).  The Postfix
# instance runs from a temp dir (t/lib/postfix.py: own main.cf/master.cf,
# queue, data_directory, loopback only, nothing leaves the box).  Checked:
# messages to john, jane, both at once and an alias land in the Maildirs with
# our trace headers; Postfix logs status=sent with moonpost's queue id and its
# queue ends empty; a user moonpost does not know is bounced by Postfix (the
# bounce reaches the sender), never lost silently; while moonpost is down
# Postfix defers and delivers once it is back.
import os
import re
import smtplib
import sys
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mail  # noqa: E402
import mpd  # noqa: E402
import postfix  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
if os.geteuid() != 0:
    tap.skip_all("a private Postfix needs root (postfix -c DIR start)")
why = postfix.missing()
if why:
    tap.skip_all(why)

JOHN, JANE, GHOST, TEAM = ("john@example.org", "jane@example.org", "ghost@example.org",
                           "team@example.org")
WAIT = 30 if mpd.sanitized() else 20
RELAY = "relay.postfix.test"


def send(pf, sender, rcpts, subject, body):
    """One message into Postfix's smtpd; returns the Postfix queue id."""
    msg = ("From: <%s>\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@client.test>\r\n\r\n%s"
           % (sender, ", ".join("<%s>" % r for r in rcpts), subject, subject,
              body.replace("\n", "\r\n")))
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test", timeout=30) as s:
        code, text = s.ehlo()
        s.mail(sender)
        for r in rcpts:
            code, text = s.rcpt(r)
            if code != 250:
                raise postfix.PostfixError("Postfix refused RCPT %s: %d %s" % (r, code, text))
        code, text = s.data(msg.encode())
    m = re.search(r"queued as (\w+)", text.decode())
    if code != 250 or not m:
        raise postfix.PostfixError("Postfix refused DATA: %d %s" % (code, text))
    return m.group(1)


def find(site, email, subject, n=1, timeout=WAIT):
    """Files in email's new/ whose Subject is subject: polls until n are there."""
    def look():
        out = []
        for p in site.files(email):
            with open(p, "rb") as f:
                if ("\nSubject: %s\n" % subject).encode() in f.read():
                    out.append(p)
        return out
    return mail.wait_count(look, n, timeout)


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def sent_line(pf, pqid, rcpt, timeout=WAIT):
    """Postfix's `PQID: to=<rcpt>, ... status=sent (...delivered as QID)`."""
    m = pf.wait_log(r"^.*\b%s: to=<%s>,.*status=sent \(250 2\.0\.0 <[^>]+> Ok: "
                    r"delivered as (\S+)\)$" % (pqid, re.escape(rcpt)), timeout)
    return m


def check_copy(site, path, mailbox, sender, subject, body, mqid, pqid, for_rcpt, peer, what):
    """One delivered copy: trace headers (ours, then Postfix's), content, name."""
    text = read(path) if path else ""
    tap.ok(path is not None, "%s: in %s's Maildir" % (what, mailbox))
    if not path:
        return
    ours = (r"\AReturn-Path: <%s>\nDelivered-To: %s\nReceived: from %s \(\[%s\]\)\n"
            r"\tby %s \(moonpost\) with LMTP id %s%s;\n\t%s\n"
            % (re.escape(sender), re.escape(mailbox), re.escape(RELAY), re.escape(peer),
               re.escape(mail.HOST), re.escape(mqid or "?"),
               r"\n\tfor <%s>" % re.escape(for_rcpt) if for_rcpt else "", mail.DATE_RE))
    tap.like(text, ours, "%s: Return-Path, Delivered-To, our Received (LMTP, qid %s)"
             % (what, mqid))
    tap.like(text, r"\nReceived: from client\.test \(localhost \[127\.0\.0\.1\]\)\n"
             r"\tby %s \(Postfix\) with ESMTP id %s" % (re.escape(RELAY), pqid),
             "%s: then Postfix's own Received (queue id %s)" % (what, pqid))
    tap.ok(("\nSubject: %s\n" % subject) in text and text.endswith("\n\n" + body),
           "%s: Subject and body intact" % what, "file tail: %r" % text[-300:])
    m = mail.NAME_RE.match(os.path.basename(path))
    data = text.encode()
    tap.ok(m is not None and int(m.group(1)) == len(data)
           and int(m.group(2)) == len(data) + data.count(b"\n"),
           "%s: file name with S=/W= sizes" % what, os.path.basename(path))


def deliver_set(site, pf, mode, peer):
    """The main round: single recipients, both at once, an alias, unknown users."""
    tag = uuid.uuid4().hex[:8]
    body1 = "Hello John,\nthis came through Postfix (%s).\n.leading dot\nBye\n" % mode
    body2 = "Hello Jane,\n%s\n" % ("x" * 900)
    body3 = "To both of you (%s).\n" % mode
    s1, s2, s3 = ("%s-%s-john" % (mode, tag), "%s-%s-jane" % (mode, tag),
                  "%s-%s-both" % (mode, tag))
    q1 = send(pf, JANE, [JOHN], s1, body1)
    q2 = send(pf, JOHN, [JANE], s2, body2)
    q3 = send(pf, "someone@remote.test", [JOHN, JANE], s3, body3)

    m1, m2 = sent_line(pf, q1, JOHN), sent_line(pf, q2, JANE)
    m3a, m3b = sent_line(pf, q3, JOHN), sent_line(pf, q3, JANE)
    tap.ok(m1 and m2 and m3a and m3b,
           "%s: Postfix logs status=sent with moonpost's reply for every recipient" % mode,
           pf.log_tail(40))
    if m1:
        where = (r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % site.lmtp_port if mode == "inet"
                 else r"\S*\[%s\]" % re.escape(site.lmtp_path))
        tap.like(m1.group(0), r"relay=%s," % where,
                 "%s: Postfix used the %s LMTP listener" % (mode, mode))
    mq = lambda m: m.group(1) if m else None  # noqa: E731
    tap.ok(m3a and m3b and mq(m3a) == mq(m3b),
           "%s: both recipients of one message in one LMTP transaction (one qid)" % mode)

    f1, f2 = find(site, JOHN, s1), find(site, JANE, s2)
    f3a, f3b = find(site, JOHN, s3), find(site, JANE, s3)
    check_copy(site, f1[0] if len(f1) == 1 else None, JOHN, JANE, s1, body1, mq(m1), q1,
               JOHN, peer, "%s to john" % mode)
    check_copy(site, f2[0] if len(f2) == 1 else None, JANE, JOHN, s2, body2, mq(m2), q2,
               JANE, peer, "%s to jane" % mode)
    check_copy(site, f3a[0] if len(f3a) == 1 else None, JOHN, "someone@remote.test", s3,
               body3, mq(m3a), q3, None, peer, "%s to both, john's copy" % mode)
    check_copy(site, f3b[0] if len(f3b) == 1 else None, JANE, "someone@remote.test", s3,
               body3, mq(m3b), q3, None, peer, "%s to both, jane's copy" % mode)
    for m in (m1, m2, m3a):
        if m:
            tap.ok(site.d.wait_log(r"event=delivered qid=%s .*status=sent" % mq(m), 5),
                   "%s: moonpost logged qid %s as delivered" % (mode, mq(m)))

    # An alias in moonpost's directory: Postfix sends one RCPT, moonpost
    # delivers to both mailboxes and answers once.
    s4 = "%s-%s-team" % (mode, tag)
    q4 = send(pf, JOHN, [TEAM], s4, "team mail\n")
    m4 = sent_line(pf, q4, TEAM)
    tap.ok(m4 and len(find(site, JOHN, s4)) == 1 and len(find(site, JANE, s4)) == 1,
           "%s: alias team@ via LMTP: one status=sent in Postfix, a copy for john and jane"
           % mode, pf.log_tail(10))

    # Unknown to moonpost (Postfix's own table knows ghost@): LMTP 550 at
    # RCPT, Postfix bounces to the sender -- never a silent loss.  Once alone
    # (no DATA at all), once next to a good recipient (per-recipient status).
    s5, s6 = "%s-%s-ghost" % (mode, tag), "%s-%s-mixed" % (mode, tag)
    q5 = send(pf, JANE, [GHOST], s5, "to nobody\n")
    q6 = send(pf, JANE, [JOHN, GHOST], s6, "to john and nobody\n")
    for q, s in ((q5, s5), (q6, s6)):
        b = pf.wait_log(r"^.*\b%s: to=<%s>,.*dsn=5\.1\.1, status=bounced \(host \S+ said: "
                        r"550 5\.1\.1 <%s>: Recipient address rejected: User unknown"
                        r" \(in reply to RCPT TO command\)\)$"
                        % (q, re.escape(GHOST), re.escape(GHOST)), WAIT)
        tap.ok(b, "%s: unknown user: Postfix logs status=bounced with our 550 5.1.1 (%s)"
               % (mode, s), pf.log_tail(20))
        bounce = mail.wait_count(
            lambda: [p for p in site.files(JANE)
                     if "Undelivered Mail Returned to Sender" in read(p) and s in read(p)],
            1, WAIT)
        text = read(bounce[0]) if bounce else ""
        tap.ok(len(bounce) == 1 and "Return-Path: <>\n" in text
               and "Final-Recipient: rfc822; %s" % GHOST in text
               and "550 5.1.1" in text and "Status: 5.1.1" in text,
               "%s: the bounce (DSN 5.1.1 for ghost@) reached the sender's Maildir (%s)"
               % (mode, s), text[:1500])
    tap.ok(sent_line(pf, q6, JOHN) and len(find(site, JOHN, s6)) == 1,
           "%s: the good recipient of the mixed message got it" % mode)
    tap.ok(not os.path.exists(os.path.join(site.vmail, "example.org", "ghost")),
           "%s: no Maildir was made for the unknown user" % mode)
    tap.ok(mpd.poll(pf.queue_empty, WAIT), "%s: Postfix queue empty (postqueue -p)" % mode,
           pf.queue())


def deferral(site, pf):
    """moonpost down: Postfix defers (queue keeps it); back up: delivered."""
    d = site.d
    tap.is_(d.stop(), 0, "moonpost stopped (LMTP down)")
    s = "down-%s" % uuid.uuid4().hex[:8]
    q = send(pf, JANE, [JOHN], s, "sent while moonpost was down\n")
    m = pf.wait_log(r"^.*\b%s: to=<%s>,.*status=deferred \(connect to 127\.0\.0\.1"
                    % (q, re.escape(JOHN)), WAIT)
    tap.ok(m, "LMTP connection refused: Postfix defers the message", pf.log_tail(10))
    tap.ok(q in pf.queue(), "the deferred message waits in Postfix's queue")
    d.start()
    pf.flush()
    got = find(site, JOHN, s, timeout=WAIT)
    tap.ok(len(got) == 1 and sent_line(pf, q, JOHN, 5),
           "moonpost back: Postfix delivers the deferred message exactly once (postqueue -f)",
           pf.log_tail(10))
    tap.ok(mpd.poll(pf.queue_empty, WAIT), "queue empty again", pf.queue())


def main():
    site = mail.Site(lmtp=True, lmtp_unix=True)
    pf = postfix.Postfix("lmtp:inet:127.0.0.1:%d" % site.lmtp_port,
                         [JOHN, JANE, GHOST, TEAM])
    try:
        with tap.section("postfix start"):
            pf.start()
            tap.ok(pf.running(), "private Postfix runs from %s (smtpd on 127.0.0.1:%d)"
                   % (pf.dir, pf.port))
        with tap.section("inet"):
            deliver_set(site, pf, "inet", "127.0.0.1")
        with tap.section("deferral"):
            deferral(site, pf)
        with tap.section("unix"):
            st = os.stat(site.lmtp_path)
            tap.is_(oct(st.st_mode & 0o777), oct(0o666),
                    "LMTP socket is mode 0666 (Postfix's lmtp runs as user postfix)")
            tap.ok(pf.stop(), "Postfix stops (postfix stop) to switch the transport")
            pf.write_main("lmtp:unix:%s" % site.lmtp_path)
            pf.start()
            deliver_set(site, pf, "unix", "local")
        with tap.section("stop"):
            tap.unlike(pf.log_text(), r"(?:fatal|panic):", "no fatal/panic in Postfix's log")
            tap.ok(pf.stop(), "Postfix stops cleanly, all its processes gone")
    finally:
        pf.cleanup()
        site.stop()


main()
tap.done()
