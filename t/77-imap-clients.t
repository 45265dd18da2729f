#!/usr/bin/env python3
# IMAP with a real client: mutt (on a pseudo-terminal, driven by "push")
# logs in over STARTTLS, opens INBOX, pipes a message out byte for byte,
# flags one, copies one to Archive and syncs; the Maildir shows the flag
# in the file name and the copy in .Archive, with moonpost's UIDs.
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

if shutil.which("mutt") is None:
    tap.skip_all("mutt is not installed (tools/deps.sh test installs it)")
mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")

MSGS = [b"From: Ann <ann@example.net>\nTo: john@example.org\nSubject: first\n"
        b"Date: Sat, 05 Dec 2026 10:00:00 +0000\nMessage-ID: <a1@example.net>\n\nHello John,\n.\nbye\n",
        b"From: bob@example.net\nTo: john@example.org\nSubject: second\n"
        b"Date: Sat, 05 Dec 2026 11:00:00 +0000\nMessage-ID: <b2@example.net>\n\nsecond body\n"]


def put(md, content, n):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(md, d), exist_ok=True)
    w = len(content) + content.count(b"\n")
    name = "%d.M%dP%d.test,S=%d,W=%d" % (1700000000 + n, n, os.getpid(), len(content), w)
    with open(os.path.join(md, "new", name), "wb") as f:
        f.write(content)
    os.utime(os.path.join(md, "new", name), (1700000000 + n, 1700000000 + n))


def run_mutt(rc, push, timeout=30):
    """mutt needs a terminal: run it on a pty, feed nothing, wait for exit."""
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "vt100"
        os.environ["HOME"] = os.path.dirname(rc)
        os.execvp("mutt", ["mutt", "-n", "-F", rc, "-e", "push '%s'" % push])
    out = b""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                d = os.read(fd, 65536)
            except OSError:
                break
            if not d:
                break
            out += d
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None, out
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
    os.close(fd)
    return True, out


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
    home = os.path.join(d.dir, "mutthome")
    os.makedirs(home)
    rc = os.path.join(home, "muttrc")
    piped = os.path.join(home, "piped.txt")
    with open(rc, "w") as f:
        f.write("""set folder="imap://john%%40example.org@127.0.0.1:%d/"
set spoolfile="+INBOX"
set imap_pass="secret"
set ssl_starttls=yes
set ssl_force_tls=yes
set certificate_file="%s"
set ssl_verify_host=no
set ssl_verify_dates=no
set sort=date
set move=no
set quit=yes
set delete=yes
set confirmappend=no
set confirmcreate=no
set wait_key=no
set pipe_decode=no
set header_cache=""
set message_cachedir=""
set imap_check_subscribed=yes
""" % (port, d.cert))
    try:
        ok, out = run_mutt(rc, "<pipe-message>cat > %s<enter><flag-message><next-entry>"
                               "<copy-message>=Archive<enter><sync-mailbox><quit>" % piped)
        tap.ok(ok, "mutt ran to the end over IMAP + STARTTLS",
               out[-600:].decode("utf-8", "replace") if out else "")
        got = open(piped, "rb").read() if os.path.exists(piped) else b""
        tap.is_(got, MSGS[0], "<pipe-message>: the first message, byte for byte")
        cur = os.listdir(os.path.join(md, "cur"))
        flags = {n.split(",S=")[0]: n.split(":2,")[1] for n in cur if ":2," in n}
        first = [v for k, v in flags.items() if "M1P" in k]
        tap.ok(first and "F" in first[0], "<flag-message> + sync: \\Flagged (F) on disk", cur)
        arch = os.path.join(md, ".Archive")
        copies = [os.path.join(sub, n) for sub in ("cur", "new") if os.path.isdir(os.path.join(arch, sub))
                  for n in os.listdir(os.path.join(arch, sub))]    # a copy lands in new/ (\Recent)
        data = [open(os.path.join(arch, n), "rb").read() for n in copies]
        tap.ok(data == [MSGS[1]], "<copy-message>=Archive: the second message in .Archive", copies)
        log = d.log_text()
        tap.like(log, r"event=login user=\"john@example.org\"", "the login is logged")
    finally:
        d.stop()
        d.cleanup()
    tap.done()


main()
