"""Helpers for the receive tests (t/70-*, t/71-*): a moonpostd with a file
directory and Maildirs in its temp dir, raw SMTP/LMTP clients (TCP, unix
socket, chosen source address), and checks of what landed in a Maildir.

    site = mail.Site(mail.DIRECTORY, smtp={"rcpt_max": 3}, lmtp=True)
    with site.client() as c:
        ...
    path = site.wait_new("john@example.org", 1)[0]
    mail.check_stored(path, stored_bytes, sender=..., mailbox=..., helo=..., qid=...)
"""

import os
import re
import socket
import subprocess
import time

import mpd
import tap

HOST = "mx.moonpost.test"      # mpd.Daemon's default hostname

# The directory most tests use; {H} is replaced by a real password hash.
DIRECTORY = """\
domain example.org
domain catch.test
domain other.test
user john@example.org {H}
user jane@example.org {H}
user quota@example.org {H} quota=2000
user box@catch.test {H}
alias postmaster@example.org john@example.org
alias team@example.org john@example.org,jane@example.org
alias sales@example.org john@example.org
alias chain1@example.org chain2@example.org
alias chain2@example.org jane@example.org
alias loopx@example.org loopy@example.org
alias loopy@example.org loopx@example.org
alias ext@example.org someone@remote.test
alias mixed@example.org jane@example.org,someone@remote.test
alias @catch.test box@catch.test
"""

_hash = None


def cli():
    return os.path.join(os.path.dirname(mpd.binary()), "moonpost")


def pw_hash():
    """One BLF-CRYPT hash of "secret", made once per script by the CLI."""
    global _hash
    if _hash is None:
        _hash = subprocess.run([cli(), "pw", "hash", "-s", "BLF-CRYPT"], input="secret\n",
                               capture_output=True, text=True, check=True,
                               timeout=60).stdout.strip()
    return _hash


# --------------------------------------------------------------- clients --

class Client(mpd.SMTPClient):
    """mpd.SMTPClient over TCP from a chosen loopback source, or over a unix
    socket (path=...)."""

    def __init__(self, port=None, source="127.0.0.1", path=None, timeout=20):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                                 source_address=(source, 0))
        self.buf = b""

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def codes(self, n):
        return [r.code for r in self.replies(n)]

    def quiet(self, timeout=0.3):
        """True if the server sends nothing more within timeout."""
        return self.pending(timeout) == b""


def qid_of(reply):
    """QID from "250 2.0.0 Ok: queued as QID" / "... delivered as QID"."""
    m = re.search(r"(?:queued|delivered) as (\S+)", reply.text if reply else "")
    return m.group(1) if m else None


# ------------------------------------------------------------------ site --

class Site:
    """mpd.Daemon + file directory + Maildirs under DIR/vmail/%d/%n/Maildir.

    smtp: overrides for the smtp = {} table; lmtp / lmtp_unix add LMTP
    listeners (TCP port self.lmtp_port, socket self.lmtp_path); config:
    more overrides deep-merged last; setup(daemon) runs just before the
    start (e.g. to write policies/ or rules/ files)."""

    def __init__(self, directory=DIRECTORY, smtp=None, lmtp=False, lmtp_unix=False,
                 config=None, setup=None):
        self.d = mpd.Daemon(start=False)
        self.dirfile = os.path.join(self.d.dir, "directory")
        self.vmail = os.path.join(self.d.dir, "vmail")
        with open(self.dirfile, "w") as f:
            f.write(directory.replace("{H}", pw_hash()))
        listen = self.d.config["listen"]
        if lmtp:
            self.lmtp_port = mpd.free_port()
            listen.append({"address": "127.0.0.1", "port": self.lmtp_port,
                           "protocol": "lmtp", "tls": "none"})
        if lmtp_unix:
            self.lmtp_path = os.path.join(self.d.dir, "lmtp.sock")
            listen.append({"path": self.lmtp_path, "protocol": "lmtp", "tls": "none"})
        over = {"directory": {"backend": "file", "file": self.dirfile,
                              "maildir": os.path.join(self.vmail, "%d/%n/Maildir")}}
        if smtp:
            over["smtp"] = smtp
        mpd.merge(over, config or {})
        self.d.write_config(over)
        if setup:
            setup(self.d)
        self.d.start()

    @property
    def port(self):
        return self.d.ports["smtp"]

    def client(self, **kw):
        return Client(self.port, **kw)

    def session(self, helo="client.test", **kw):
        """Connected client past the greeting and EHLO."""
        c = self.client(**kw)
        c.reply()
        c.cmd("EHLO " + helo)
        return c

    def maildir(self, email):
        local, domain = email.split("@", 1)
        return os.path.join(self.vmail, domain, local, "Maildir")

    def files(self, email, sub="new"):
        try:
            names = os.listdir(os.path.join(self.maildir(email), sub))
        except FileNotFoundError:
            return []
        return sorted((os.path.join(self.maildir(email), sub, n) for n in names),
                      key=lambda p: (os.stat(p).st_mtime_ns, p))

    def all_files(self):
        """Every file in any new/, cur/ or tmp/ under vmail."""
        out = []
        for root, _dirs, names in os.walk(self.vmail):
            if os.path.basename(root) in ("new", "cur", "tmp"):
                out.extend(os.path.join(root, n) for n in names)
        return sorted(out)

    def usage(self, email):
        """Sum of S= over new/ and cur/ (what the quota check counts)."""
        total = 0
        for sub in ("new", "cur"):
            for p in self.files(email, sub):
                m = re.search(r",S=(\d+)", os.path.basename(p))
                total += int(m.group(1)) if m else os.path.getsize(p)
        return total

    def stop(self):
        self.d.stop()
        self.d.cleanup()


# ---------------------------------------------------------------- checks --

def lf(content):
    """What a Maildir file holds for a message a client submits as `content`
    (CRLF lines; the client does the dot-stuffing): LF line ends, and a
    final line end added when the content lacks one."""
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content.replace(b"\r\n", b"\n")


def unstuff(wire):
    """The stored form of a DATA body as sent on the wire (CRLF lines,
    without the final ".CRLF"): CRLF -> LF and one leading dot removed."""
    if not wire:
        return b""
    if not wire.endswith(b"\r\n"):
        wire += b"\r\n"
    lines = wire[:-2].split(b"\r\n")
    return b"".join((ln[1:] if ln.startswith(b".") else ln) + b"\n" for ln in lines)


stored_form = unstuff    # the name in the first version of this module


def stuff(content):
    """CRLF content -> dot-stuffed DATA body including the end marker."""
    if content and not content.endswith(b"\r\n"):
        content += b"\r\n"
    return re.sub(br"(?m)^\.", b"..", content) + b".\r\n"


NAME_RE = re.compile(r"^\d+\.M\d+P\d+Q\d+\.%s,S=(\d+),W=(\d+)$" % re.escape(HOST))
DATE_RE = r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}"


def trace_re(sender, mailbox, helo, qid, rcpt=None, with_="ESMTP"):
    tls = with_ in ("ESMTPS", "ESMTPSA", "LMTPS")
    return (r"\AReturn-Path: <%s>\nDelivered-To: %s\n"
            r"Received: from %s \(\[[^\]\n]*\]\)\n\tby %s \(moonpost\) with %s id %s%s%s;\n"
            r"\t%s\n\Z" % (re.escape(sender), re.escape(mailbox), re.escape(helo),
                           re.escape(HOST), re.escape(with_), re.escape(qid or "?"),
                           r"\n\t\([^\n]+\)" if tls else "",
                           r"\n\tfor <(?i:%s)>" % re.escape(rcpt) if rcpt else "", DATE_RE))


def check_stored(path, content, sender, mailbox, helo, qid, rcpt=None, with_="ESMTP",
                 desc=""):
    """Three assertions on one delivered file: the content after our trace
    headers is exactly `content` (bytes, LF endings); the trace headers are
    Return-Path, Delivered-To and Received (helo, "moonpost", `with_`, the
    qid, "for <rcpt>" only when rcpt is given); the name is in new/ with S=
    the file size and W= the CRLF size, and tmp/ is empty."""
    desc = desc or os.path.basename(path)
    if path is None or not os.path.exists(path or ""):
        tap.ok(False, "%s: stored" % desc, "no file %r" % path)
        return False
    with open(path, "rb") as f:
        data = f.read()
    good = tap.ok(data.endswith(content), "%s: content stored exactly (%d bytes)"
                  % (desc, len(content)),
                  "file tail: %r" % data[-200:], "want tail: %r" % content[-200:])
    prefix = data[:len(data) - len(content)] if good else data[:2000]
    good &= tap.like(prefix.decode("utf-8", "replace"),
                     trace_re(sender, mailbox, helo, qid, rcpt, with_),
                     "%s: trace headers (Return-Path, Delivered-To, Received %s)"
                     % (desc, with_)) is not None
    name = os.path.basename(path)
    m = NAME_RE.match(name)
    sub = os.path.basename(os.path.dirname(path))
    tmp = os.listdir(os.path.join(os.path.dirname(os.path.dirname(path)), "tmp"))
    sizes = (int(m.group(1)), int(m.group(2))) if m else None
    good &= tap.ok(m is not None and sub == "new" and tmp == []
                   and sizes == (len(data), len(data) + data.count(b"\n")),
                   "%s: in new/, S= file size, W= CRLF size, tmp/ empty" % desc,
                   "path %s (dir %s), tmp %r" % (path, sub, tmp),
                   "S,W %r want %r" % (sizes, (len(data), len(data) + data.count(b"\n"))))
    return good


def wait_count(fn, n, timeout=5):
    """Polls fn() (a list) until it has at least n items; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if len(r) >= n or time.monotonic() > deadline:
            return r
        time.sleep(0.02)
