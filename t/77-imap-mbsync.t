#!/usr/bin/env python3
# IMAP two-way sync with mbsync (isync) over STARTTLS: the first sync
# downloads every folder; then a flag set locally, a message written
# locally (APPEND), a local deletion (STORE \Deleted + EXPUNGE) and a new
# server-side delivery all reach the other side; a third sync changes
# nothing.
import os
import shutil
import smtplib
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

if shutil.which("mbsync") is None:
    tap.skip_all("mbsync is not installed (tools/deps.sh test installs isync)")
mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")

MSGS = [b"From: a@example.net\nTo: john@example.org\nSubject: one\nMessage-ID: <1@x>\n\nfirst\n",
        b"From: b@example.net\nTo: john@example.org\nSubject: two\nMessage-ID: <2@x>\n\nsecond\n"]


def put(md, content, n):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP%d.test,S=%d,W=%d" % (1700000000 + n, n, os.getpid(), len(content), w)
    with open(os.path.join(md, "new", name), "wb") as f:
        f.write(content)


def files(md):
    out = {}
    for sub in ("cur", "new"):
        p = os.path.join(md, sub)
        for n in os.listdir(p) if os.path.isdir(p) else []:
            with open(os.path.join(p, n), "rb") as f:
                out[n] = f.read().replace(b"\r\n", b"\n")
    return out


def by_subject(md):
    out = {}
    for n, data in files(md).items():
        subj = [ln for ln in data.split(b"\n") if ln.startswith(b"Subject: ")]
        out[subj[0][9:].decode() if subj else "?"] = n.split(":2,")[1] if ":2," in n else ""
    return out


def mbsync(rc):
    r = subprocess.run(["mbsync", "-c", rc, "-a"], capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr)[-1500:]


def main():
    d = mpd.Daemon(start=False)
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    dirfile = os.path.join(d.dir, "directory")
    with open(dirfile, "w") as f:
        f.write("domain example.org\nuser john@example.org %s\n" % h)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "starttls"})
    vmail = os.path.join(d.dir, "vmail")
    d.write_config({"directory": {"backend": "file", "file": dirfile,
                                  "maildir": vmail + "/%d/%n/Maildir"}})
    d.start()
    md = os.path.join(vmail, "example.org", "john", "Maildir")
    for i, m in enumerate(MSGS):
        put(md, m, i + 1)
    local = os.path.join(d.dir, "local")
    os.makedirs(local)
    rc = os.path.join(d.dir, "mbsyncrc")
    with open(rc, "w") as f:
        f.write("""IMAPAccount moonpost
Host localhost
Port %d
User john@example.org
Pass secret
SSLType STARTTLS
CertificateFile %s
AuthMechs PLAIN

IMAPStore remote
Account moonpost

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel all
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
""" % (port, d.cert, local, local))
    try:
        rc1, out = mbsync(rc)
        tap.is_(rc1, 0, "first mbsync: exit 0", out)
        tap.is_(sorted(by_subject(os.path.join(local, "INBOX"))), ["one", "two"],
                "first sync: INBOX downloaded")
        tap.ok(all(os.path.isdir(os.path.join(local, f)) for f in ("Sent", "Trash", "Drafts")),
               "first sync: the folders are created locally", os.listdir(local))
        # local changes
        inbox = os.path.join(local, "INBOX")
        for n, data in files(inbox).items():
            sub = "cur" if os.path.exists(os.path.join(inbox, "cur", n)) else "new"
            path = os.path.join(inbox, sub, n)
            if b"Subject: one" in data:
                base = n.split(":2,")[0]
                os.rename(path, os.path.join(inbox, "cur", base + ":2,FS"))
            else:
                os.unlink(path)
        sent = os.path.join(local, "Sent")
        with open(os.path.join(sent, "cur", "1800000000.local1.host:2,S"), "wb") as f:
            f.write(b"From: john@example.org\nTo: x@example.net\nSubject: sent locally\n\nhi\n")
        s = smtplib.SMTP("127.0.0.1", d.ports["smtp"], timeout=10)
        s.sendmail("c@example.net", ["john@example.org"], b"Subject: three\r\n\r\nthird\r\n")
        s.quit()
        rc2, out = mbsync(rc)
        tap.is_(rc2, 0, "second mbsync: exit 0", out)
        remote = by_subject(md)
        tap.is_(remote.get("one"), "FS", "a local flag change reached the server (:2,FS)", remote)
        tap.ok("two" not in remote, "a local deletion was expunged on the server", remote)
        tap.ok("three" in by_subject(inbox), "a server-side delivery was downloaded")
        tap.is_(list(by_subject(os.path.join(md, ".Sent"))), ["sent locally"],
                "a local message was uploaded (APPEND) to Sent")
        rc3, out = mbsync(rc)
        tap.is_(rc3, 0, "third mbsync: exit 0", out)
        tap.is_(by_subject(md), remote | {"three": by_subject(md).get("three")}, "nothing changed")
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
