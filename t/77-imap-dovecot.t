#!/usr/bin/env python3
# The same Maildir served by moonpost and by a private Dovecot 2.3 imap, in
# turn: what moonpost did (UIDs, UIDVALIDITY, flags, a new folder, the
# subscription, a keyword, APPEND and COPY with their UIDPLUS answers) is what Dovecot
# shows, and what Dovecot then did (APPEND, a flag and a keyword) is what moonpost shows,
# with Dovecot's UIDs. Clients switching servers re-download nothing.
import imaplib
import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import dovecot  # noqa: E402
import mpd  # noqa: E402
import tap  # noqa: E402

if not dovecot.available("imap"):
    tap.skip_all("dovecot-imapd is not installed (tools/deps.sh test installs it)")
if os.geteuid() != 0:
    tap.skip_all("needs root: Dovecot serves the Maildir as another user")
mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")

def put(md, content, n):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP%d.test,S=%d,W=%d" % (1700000000 + n, n, os.getpid(), len(content), w)
    with open(os.path.join(md, "new", name), "wb") as f:
        f.write(content)
    os.utime(os.path.join(md, "new", name), (1700000000 + n, 1700000000 + n))


def state(m, folder):
    """(uidvalidity, {uid: (sorted system flags, size)}) of a folder."""
    typ, data = m.select(folder)
    assert typ == "OK", data
    uv = int(m.untagged_responses.get("UIDVALIDITY", [b"0"])[0])
    typ, data = m.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE)")
    out = {}
    for x in data:
        if not isinstance(x, bytes):
            continue
        mm = re.search(rb"UID (\d+)", x)
        fl = re.search(rb"FLAGS \(([^)]*)\)", x)
        sz = re.search(rb"RFC822.SIZE (\d+)", x)
        if mm:
            flags = sorted(f.lower() for f in fl.group(1).decode().split() if f != "\\Recent")
            out[int(mm.group(1))] = (flags, int(sz.group(1)))
    return uv, out


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser john@example.org %s\n" % h)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    md = os.path.join(vmail, "example.org", "john", "Maildir")
    for i in range(3):
        put(md, b"From: a@example.net\nSubject: m%d\n\nbody %d\n" % (i, i), i + 1)
    dv = None
    try:
        m = imaplib.IMAP4("127.0.0.1", port)
        m.login("john@example.org", "secret")
        m.select("INBOX")
        m.store("1", "+FLAGS", "(\\Flagged \\Answered $Forwarded)")
        m.create("Work.Projects")
        m.subscribe("Work.Projects")
        typ, data = m.append("Sent", "(\\Seen)", None, b"Subject: sent\r\n\r\nsent body\r\n")
        sent_uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        typ, data = m.copy("2", "Work.Projects")
        tap.like(data[0].decode(), r"^\[COPYUID \d+ 2 1\]", "moonpost COPY: COPYUID")
        ours = {f: state(m, f) for f in ("INBOX", "Sent", "Work.Projects")}
        tap.ok("$forwarded" in ours["INBOX"][1][1][0], "moonpost kept the keyword", ours["INBOX"])
        m.logout()
        dv = dovecot.Dovecot(md, "john@example.org", "{PLAIN}secret", protocol="imap")
        m = imaplib.IMAP4("127.0.0.1", dv.port)
        m.login("john@example.org", "secret")
        for f, st in ours.items():
            tap.is_(state(m, f), st, "Dovecot sees moonpost's %s: UIDVALIDITY, UIDs, flags, sizes" % f)
        tap.ok(sent_uid in ours["Sent"][1], "moonpost's APPENDUID is the UID Dovecot shows")
        typ, data = m.lsub('""', "*")
        tap.ok(any(b"Work.Projects" in x for x in data), "Dovecot reads moonpost's subscription", data)
        typ, data = m.list('""', "*")
        names = [x.decode().rsplit(" ", 1)[1].strip('"') for x in data]
        tap.ok({"INBOX", "Sent", "Trash", "Work.Projects"} <= set(names), "Dovecot lists moonpost's folders", names)
        typ, data = m.append("INBOX", None, None, b"Subject: from dovecot\r\n\r\nhi\r\n")
        dv_uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        m.select("INBOX")
        m.store("3", "+FLAGS", "(\\Seen NonJunk)")
        m.subscribe("Sent")
        theirs = state(m, "INBOX")
        tap.ok("nonjunk" in theirs[1][3][0], "Dovecot set its keyword", theirs)
        m.logout()
        dv.stop()
        dv = None
        m = imaplib.IMAP4("127.0.0.1", port)
        m.login("john@example.org", "secret")
        tap.is_(state(m, "INBOX"), theirs, "moonpost sees Dovecot's INBOX: its APPEND (UID %d) and flag" % dv_uid)
        typ, data = m.lsub('""', "*")
        tap.ok(any(b"Sent" in x for x in data) and any(b"Work.Projects" in x for x in data),
               "moonpost reads Dovecot's subscriptions file", data)
        m.logout()
    finally:
        if dv:
            dv.stop()
        d.stop()
        d.cleanup()
    tap.done()


main()
