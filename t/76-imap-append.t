#!/usr/bin/env python3
# IMAP APPEND streamed to disk and MULTIAPPEND (RFC 3502) against the real
# daemon: one message (flags, date-time, bare CRs, into cur/ or new/), a
# 30 MB message with the worker's peak memory (VmHWM) not growing by its
# size and its bytes in tmp/ while it arrives, a mailbox name as a literal,
# MULTIAPPEND of 3 messages with one APPENDUID uid-set and every file byte
# for byte, all-or-nothing (third message over quota: sync and LITERAL+,
# bad options of the second), limits before the literal is sent (TOOBIG for
# a sync literal, BAD + BYE for a non-sync one, TRYCREATE), a client that
# leaves mid-literal (nothing in new/cur, tmp/ cleaned), a mailbox deleted
# meanwhile, and SIGKILL under APPEND load: every APPEND that got OK is on
# disk, complete, and the tmp/ leftovers are swept by the next worker.
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import mpd  # noqa: E402
import tap  # noqa: E402

mpd.require_binary()
CLI = os.path.join(os.path.dirname(mpd.binary()), "moonpost")
APPEND_MAX = 40 * 1024 * 1024
QUOTA = 30000


class Imap:
    """Raw IMAP client: exact lines; literals in responses read whole."""

    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.n = 0

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("closed")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln.decode("utf-8", "replace")

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def tag(self):
        self.n += 1
        return "a%d" % self.n

    def until(self, tag):
        untagged = []
        while True:
            ln = self.line()
            if ln.startswith(tag + " "):
                return untagged, ln
            untagged.append(ln)

    def cmd(self, text):
        t = self.tag()
        self.send("%s %s\r\n" % (t, text))
        return self.until(t)

    def login(self, user):
        self.line()
        return self.cmd('LOGIN %s@example.org "secret"' % user)[1]

    def eof(self, timeout=10):
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def make_directory(path):
    h = subprocess.run([CLI, "pw", "hash", "-s", "SHA512-CRYPT"], input="secret\n",
                       capture_output=True, text=True, check=True).stdout.strip()
    with open(path, "w") as f:
        f.write("domain example.org\n" + "".join(
            "user %s@example.org %s\n" % (u, h) for u in ("one", "big", "multi", "lim", "load")) +
            "user q@example.org %s quota=%d\n" % (h, QUOTA))


def stored(msg):
    """What the Maildir holds for msg: CRLF made LF (bare CRs kept)."""
    return msg.replace(b"\r\n", b"\n")


def files(md, sub):
    try:
        return sorted(os.listdir(os.path.join(md, sub)))
    except FileNotFoundError:
        return []


def uidlist(md):
    """uid -> base name, from dovecot-uidlist."""
    out = {}
    with open(os.path.join(md, "dovecot-uidlist")) as f:
        for ln in f.read().splitlines()[1:]:
            m = re.match(r"^(\d+) .*?:(.*)$", ln)
            if m:
                out[int(m.group(1))] = m.group(2)
    return out


def find(md, base):
    """(sub, file name) of the message with this base name, or None."""
    for sub in ("new", "cur"):
        for f in files(md, sub):
            if f.split(":2,")[0] == base:
                return sub, f
    return None


def read(md, sub, name):
    with open(os.path.join(md, sub, name), "rb") as f:
        return f.read()


def uid_set(s):
    out = []
    for part in s.split(","):
        lo, _, hi = part.partition(":")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def vm(pid, key):
    v = mpd.proc_status(pid).get(key, "0 kB").split()[0]
    return int(v) * 1024


def main():
    d = mpd.Daemon(start=False)
    dirfile = os.path.join(d.dir, "directory")
    make_directory(dirfile)
    port = mpd.free_port()
    d.config["listen"].append({"address": "127.0.0.1", "port": port, "protocol": "imap",
                               "tls": "none", "plaintext_auth": True})
    vmail = os.path.join(d.dir, "vmail")
    # One worker: its memory is the one measured, the SIGKILL hits it.
    d.write_config({"workers": 1,
                    "directory": {"backend": "file", "file": dirfile, "penalty_max": 1,
                                  "maildir": vmail + "/%d/%n/Maildir"},
                    "imap": {"literal_max": 65536, "command_max": 131072,
                             "append_max": APPEND_MAX}})
    d.start()
    md = lambda user: os.path.join(vmail, "example.org", user, "Maildir")  # noqa: E731
    try:
        with tap.section("one message"):
            one(port, md("one"))
        with tap.section("a 30 MB message"):
            big(d, port, md("big"))
        with tap.section("MULTIAPPEND"):
            multi(port, md("multi"))
        with tap.section("quota"):
            quota(port, md("q"))
        with tap.section("limits"):
            limits(port, md("lim"))
        with tap.section("disconnect, deleted mailbox"):
            leave(port, md("lim"))
        with tap.section("SIGKILL under APPEND load"):
            kill(d, port, md("load"))
    finally:
        d.stop()
        d.cleanup()
    tap.done()


def one(port, md):
    c = Imap(port)
    c.login("one")
    u, t = c.cmd("CAPABILITY")
    tap.like(u[0], r"^\* CAPABILITY .* MULTIAPPEND\b", "CAPABILITY lists MULTIAPPEND")
    msg = b"From: me@example.org\r\nSubject: one\r\n\r\nbare\rCR, CR CR LF\r\r\nend\r\n"
    c.send('p1 APPEND Drafts (\\Draft $Label1) " 5-Dec-2026 10:00:00 +0100" {%d}\r\n' % len(msg))
    tap.like(c.line(), r"^\+ ", "APPEND: continuation for the literal")
    c.send(msg + b"\r\n")
    u, t = c.until("p1")
    m = re.match(r"^p1 OK \[APPENDUID (\d+) (\d+)\] ", t)
    tap.ok(m is not None, "OK [APPENDUID uidvalidity uid]", t)
    # into new/ with its flags (RFC 3501 6.3.11: \Recent "in either case";
    # Dovecot and the store read flags on a new/ file and keep them)
    cur = files(md + "/.Drafts", "new")
    tap.ok(len(cur) == 1 and cur[0].endswith(":2,Da"), "in new/ with :2,Da (a keyword too)", cur)
    if cur:
        body = read(md + "/.Drafts", "new", cur[0])
        tap.is_(body, stored(msg), "stored with LF line ends, bare CRs kept")
        tap.ok(",S=%d,W=%d" % (len(body), len(msg)) in cur[0], "S= and W= in the name", cur[0])
        tap.is_(int(os.stat(os.path.join(md, ".Drafts", "new", cur[0])).st_mtime), 1796461200,
                "the date-time is the internal date (mtime)")
        if m:
            tap.is_(uidlist(md + "/.Drafts").get(int(m.group(2))), cur[0].split(":2,")[0],
                    "the APPENDUID is the uidlist's UID of that file")
    tap.is_(files(md + "/.Drafts", "tmp"), [], "tmp/ is empty after the OK")
    # No flags: into new/ (\Recent for the next SELECT), as a delivery.
    c.send("p2 APPEND INBOX {%d+}\r\n" % len(msg) + msg.decode() + "\r\n")
    tap.like(c.until("p2")[1], r"^p2 OK \[APPENDUID \d+ 1\] ", "APPEND INBOX (LITERAL+)")
    new = files(md, "new")
    tap.ok(len(new) == 1 and ":2," not in new[0] and read(md, "new", new[0]) == stored(msg),
           "without flags: into new/", new)
    # The mailbox name may itself be a literal (held, not streamed).
    c.send("p3 APPEND {5}\r\n")
    tap.like(c.line(), r"^\+ ", "mailbox literal: continuation")
    c.send("INBOX (\\Seen) {%d}\r\n" % len(msg))
    tap.like(c.line(), r"^\+ ", "then the message's")
    c.send(msg + b"\r\n")
    tap.like(c.until("p3")[1], r"^p3 OK \[APPENDUID \d+ 2\] ", "APPEND {5} INBOX ...: OK")
    tap.like(c.cmd("APPEND INBOX")[1], r"^a\d+ BAD ", "APPEND without a message: BAD")
    tap.like(c.cmd('APPEND INBOX "quoted"')[1], r"^a\d+ BAD ", "a quoted message: BAD (RFC 3501 9: literal)")
    c.send("p4 APPEND INBOX {3}\r\n")
    c.line()
    c.send("abc (\\Seen)\r\n")
    tap.like(c.until("p4")[1], r"^p4 BAD ", "options after the last message: BAD")
    tap.is_(len(files(md, "new")) + len(files(md, "cur")), 2, "... and nothing added")
    c.close()


def big(d, port, md):
    workers = d.workers()
    tap.is_(len(workers), 1, "one worker", workers)
    pid = workers[0]
    c = Imap(port)
    c.login("big")
    c.cmd("NOOP")
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    msg = b"Subject: big\r\n\r\n" + line * (30 * 1024 * 1024 // len(line))
    hwm0, rss0 = vm(pid, "VmHWM"), vm(pid, "VmRSS")
    t0 = time.time()
    c.send("b1 APPEND INBOX {%d}\r\n" % len(msg))
    tap.like(c.line(), r"^\+ ", "30 MB APPEND: continuation")
    half = len(msg) // 2
    c.send(msg[:half])
    seen = mpd.poll(lambda: [f for f in files(md, "tmp")
                             if os.path.getsize(os.path.join(md, "tmp", f)) > half // 2], 20)
    tap.ok(seen, "the bytes are in a tmp/ file while the literal arrives", files(md, "tmp"))
    tap.is_(files(md, "new"), [], "... and nothing in new/ yet")
    c.send(msg[half:] + b"\r\n")
    u, t = c.until("b1")
    secs = time.time() - t0
    tap.like(t, r"^b1 OK \[APPENDUID \d+ 1\] ", "30 MB APPEND: OK [APPENDUID] (%.1fs)" % secs)
    hwm1 = vm(pid, "VmHWM")
    tap.ok(hwm1 - hwm0 < 8 * 1024 * 1024,
           "worker peak memory grew by %.1f MB, not by the message (30 MB)" % ((hwm1 - hwm0) / 1048576.0),
           "VmHWM %d -> %d, VmRSS before %d" % (hwm0, hwm1, rss0))
    new = files(md, "new")
    ok = len(new) == 1
    if ok:
        with open(os.path.join(md, "new", new[0]), "rb") as f:
            ok = hashlib.sha256(f.read()).digest() == hashlib.sha256(stored(msg)).digest()
    tap.ok(ok, "the 30 MB message is on disk byte for byte", new)
    tap.is_(files(md, "tmp"), [], "tmp/ empty")
    u, t = c.cmd("SELECT INBOX")
    u, t = c.cmd("FETCH 1 RFC822.SIZE")
    tap.is_(u, ["* 1 FETCH (RFC822.SIZE %d)" % len(msg)], "RFC822.SIZE is the size sent")
    c.close()


def multi(port, md):
    c = Imap(port)
    c.login("multi")
    msgs = [b"Subject: m%d\r\n\r\n" % i + (b"line %d\r\n" % i) * (100 * i + 1) for i in range(3)]
    c.send("m1 APPEND Archive (\\Seen) {%d}\r\n" % len(msgs[0]))
    tap.like(c.line(), r"^\+ ", "MULTIAPPEND: first continuation")
    c.send(msgs[0] + b' " 1-Jan-2026 00:00:00 +0000" {%d+}\r\n' % len(msgs[1]) + msgs[1] +
           b" (\\Flagged $Work) {%d}\r\n" % len(msgs[2]))
    tap.like(c.line(), r"^\+ ", "MULTIAPPEND: continuation for the third (after a LITERAL+ one)")
    c.send(msgs[2] + b"\r\n")
    u, t = c.until("m1")
    m = re.match(r"^m1 OK \[APPENDUID (\d+) ([\d:,]+)\] ", t)
    tap.ok(m is not None, "one OK [APPENDUID uidvalidity uid-set]", t)
    uids = uid_set(m.group(2)) if m else []
    tap.is_(m.group(2) if m else None, "1:3", "the uid-set: 1:3, in message order")
    box = md + "/.Archive"
    ul = uidlist(box)
    want = [("new", "S"), ("new", None), ("new", "Fa")]     # new/: \Recent, flags kept
    for i, uid in enumerate(uids):
        where = find(box, ul.get(uid, "?"))
        ok = where is not None and where[0] == want[i][0] and \
            (want[i][1] is None or where[1].endswith(":2," + want[i][1])) and \
            read(box, *where) == stored(msgs[i])
        tap.ok(ok, "message %d: UID %d, in %s/ with its flags, byte for byte" % (i + 1, uid, want[i][0]), where)
    if len(uids) == 3:
        where = find(box, ul.get(uids[1], "?"))
        if where:
            tap.is_(int(os.stat(os.path.join(box, *where)).st_mtime), 1767225600,
                    "the second message's date-time is its mtime")
    tap.is_(files(box, "tmp"), [], "tmp/ empty")
    # Bad options of the second message: BAD, and the first one is gone too.
    c.send("m2 APPEND Archive {3+}\r\nabc (\\Recent) {3}\r\n")
    tap.like(c.until("m2")[1], r"^m2 BAD ", "MULTIAPPEND with a bad flag list in the second: BAD")
    time.sleep(0.3)
    tap.is_(len(files(box, "new")) + len(files(box, "cur")), 3, "... nothing added")
    tap.ok(mpd.poll(lambda: files(box, "tmp") == [], 5), "... the first one's tmp/ file removed",
           files(box, "tmp"))
    tap.like(c.cmd("NOOP")[1], r"^a\d+ OK", "the session goes on")
    c.close()


def quota(port, md):
    c = Imap(port)
    c.login("q")
    body = lambda i: b"Subject: q%d\r\n\r\n" % i + b"x" * 12000 + b"\r\n"  # noqa: E731
    c.send("q1 APPEND INBOX {%d}\r\n" % len(body(1)))
    c.line()
    c.send(body(1) + b" {%d}\r\n" % len(body(2)))
    tap.like(c.line(), r"^\+ ", "MULTIAPPEND within the quota so far: continuation")
    c.send(body(2) + b" {%d}\r\n" % len(body(3)))
    u, t = c.until("q1")
    tap.like(t, r"^q1 NO \[OVERQUOTA\]", "the third message over the quota: NO [OVERQUOTA] before it is sent")
    tap.ok(mpd.poll(lambda: files(md, "tmp") == [], 5) and files(md, "new") == [] and files(md, "cur") == [],
           "none of the three added, tmp/ cleaned", files(md, "tmp"), files(md, "new"))
    # All non-synchronizing: read to the end, then the same NO.
    c.send(b"q2 APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s\r\n" %
           (len(body(1)), body(1), len(body(2)), body(2), len(body(3)), body(3)))
    tap.like(c.until("q2")[1], r"^q2 NO \[OVERQUOTA\]", "the same with LITERAL+: NO [OVERQUOTA] at the end")
    tap.ok(mpd.poll(lambda: files(md, "tmp") == [], 5) and files(md, "new") == [],
           "... none added", files(md, "tmp"), files(md, "new"))
    c.send("q3 APPEND INBOX {%d}\r\n" % len(body(1)))
    c.line()
    c.send(body(1) + b"\r\n")
    tap.like(c.until("q3")[1], r"^q3 OK \[APPENDUID", "one message within the quota: OK")
    c.close()


def limits(port, md):
    c = Imap(port)
    c.login("lim")
    c.send("t1 APPEND INBOX {%d}\r\n" % (APPEND_MAX + 1))
    tap.like(c.line(), r"^t1 NO \[TOOBIG\]", "sync literal over append_max: NO [TOOBIG], no continuation")
    tap.like(c.cmd("NOOP")[1], r"^a\d+ OK", "the session goes on")
    c.send("t2 APPEND Nope {10}\r\n")
    tap.like(c.line(), r"^t2 NO \[TRYCREATE\]", "missing mailbox: NO [TRYCREATE] before the literal")
    c.send("t3 APPEND Nope {10+}\r\n0123456789\r\n")
    tap.like(c.until("t3")[1], r"^t3 NO \[TRYCREATE\]", "missing mailbox, LITERAL+: NO [TRYCREATE]")
    c.send("t4 APPEND INBOX (\\Seen) {%d}\r\n" % (100 * 1024))
    tap.like(c.line(), r"^\+ ", "a message over literal_max but within append_max: continuation")
    c.send(b"y" * (100 * 1024) + b"\r\n")
    tap.like(c.until("t4")[1], r"^t4 OK \[APPENDUID", "... and OK")
    c.send("t5 LOGIN {%d}\r\n" % (100 * 1024))
    tap.like(c.line(), r"^t5 (NO|BAD) ", "other commands keep literal_max")
    c.send("t6 APPEND INBOX {%d+}\r\n" % (APPEND_MAX + 1) + "z" * 1000)
    tap.like(c.until("t6")[1], r"^t6 BAD \[TOOBIG\]", "non-sync literal over append_max: BAD [TOOBIG]")
    try:
        bye = c.line()
    except EOFError:
        bye = ""
    tap.like(bye, r"^\* BYE ", "then BYE")
    tap.ok(c.eof(), "and the connection closes (RFC 7888 4)")
    c.close()
    tap.is_(files(md, "tmp"), [], "tmp/ empty")


def leave(port, md):
    c = Imap(port)
    c.login("lim")
    before = files(md, "new") + files(md, "cur")
    c.send("d1 APPEND INBOX {%d}\r\n" % (2 * 1024 * 1024))
    c.line()
    c.send(b"x" * (512 * 1024))
    tap.ok(mpd.poll(lambda: files(md, "tmp") != [], 10), "mid-literal: a file in tmp/")
    c.close()
    tap.ok(mpd.poll(lambda: files(md, "tmp") == [], 10), "the client left: tmp/ cleaned", files(md, "tmp"))
    tap.is_(files(md, "new") + files(md, "cur"), before, "nothing in new/ or cur/")
    # A mailbox deleted while its message is on the way: NO.
    c = Imap(port)
    c.login("lim")
    c.cmd("CREATE Gone")
    c.send("d2 APPEND Gone {20}\r\n")
    tap.like(c.line(), r"^\+ ", "APPEND to Gone: continuation")
    c2 = Imap(port)
    c2.login("lim")
    tap.like(c2.cmd("DELETE Gone")[1], r"^a\d+ OK", "DELETE Gone from another session")
    c2.close()
    c.send(b"01234567890123456789\r\n")
    tap.like(c.until("d2")[1], r"^d2 NO ", "the mailbox was deleted meanwhile: NO")
    tap.ok(not os.path.exists(os.path.join(md, ".Gone")), "and it stays deleted")
    c.close()


def kill(d, port, md):
    """Clients append in a loop; the worker is SIGKILLed. Every message that
    got its OK must be on disk, whole; no half message in new/ or cur/."""
    oks, lock, stop = {}, threading.Lock(), threading.Event()

    def body(k):
        return b"Message-ID: <%s@load>\r\n\r\n" % k.encode() + (b"%s\r\n" % k.encode()) * 3000

    def client(n):
        try:
            c = Imap(port, timeout=10)
            c.login("load")
            for i in range(100000):
                if stop.is_set():
                    break
                k = "c%dm%d" % (n, i)
                msg = body(k)
                c.send("x APPEND INBOX {%d+}\r\n" % len(msg) + msg.decode() + "\r\n")
                u, t = c.until("x")
                if " OK " in t:
                    with lock:
                        oks[k] = t
        except (EOFError, OSError):
            pass

    threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    mpd.poll(lambda: len(oks) >= 30, 30)
    victim = d.workers()[0]
    os.kill(victim, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(30)
    tap.ok(len(oks) >= 10, "%d APPENDs answered OK before the SIGKILL" % len(oks))
    tap.diag("after the kill: %d file(s) left in tmp/" % len(files(md, "tmp")))
    on_disk = {}
    for sub in ("new", "cur"):
        for f in files(md, sub):
            data = read(md, sub, f)
            m = re.match(rb"^Message-ID: <(\w+)@load>", data)
            on_disk[m.group(1).decode() if m else f] = data
    missing = [k for k in oks if k not in on_disk]
    tap.ok(not missing, "every APPEND that got OK is on disk", missing[:5])
    bad = [k for k, v in on_disk.items() if v != stored(body(k))]
    tap.ok(not bad, "every file in new/ and cur/ is a whole message (%d)" % len(on_disk), bad[:5])
    # The replacement worker sweeps tmp/ files of the dead one.
    tap.ok(mpd.poll(lambda: len(d.workers()) == 1 and victim not in d.workers(), 20),
           "the worker was replaced")
    tap.ok(mpd.poll(lambda: files(md, "tmp") == [], 20), "tmp/ leftovers swept", files(md, "tmp"))
    c = Imap(port)
    tap.like(c.login("load"), r"^a\d+ OK", "IMAP works again")
    c.close()


main()
